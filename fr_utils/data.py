"""The sample cast shipped inside fr_utils: six public-domain photos of four people.

The photos are package data (``fr_utils/cast/``, credits in ``fr_utils/cast/CREDITS.md``),
so an installed wheel has them wherever it lives; they are found through
:func:`cast_dir` (``importlib.resources``), never through a path beside the package::

    cast_dir()                  the folder: people/<Name>/<Name>_000N.jpg, other/*.jpg, CREDITS.md
    people_dir()                the course's cast: $FR_CAST_DIR, else cast_dir() / "people"
    sample_cast()               {name: [photo paths]} of people_dir(), names and paths sorted
    cast_name(role)             the name a role stands for: "twice", "other:<j>"
    cast_photo(spec)            the photo a spec stands for: "twice:<k>", "other:<j>:<k>", "cast:<j>:<k>"
    sample_photo(name, n)       people/<name>/<name>_000<n>.jpg of the SHIPPED cast (tests, demos)
    other_photo(filename)       other/<filename>: a photo without a face, one with two faces

The cast the course uses is configured in ONE place, the environment variable
``FR_CAST_DIR`` (a folder ``<name>/*.jpg``, checked by ``python -m fr_utils.cast check``),
read only by :func:`people_dir`; everything else (the door notebook, its public checks,
its hidden tests, the grader's references) asks :func:`sample_cast`, and names people and
photos by ROLE (:func:`cast_name`, :func:`cast_photo`), never by name.  ``other/`` (a photo
without a face, one with two) always comes from the package.  docs/instructors.md says
where to set it (``make course``, nbgrader, a hub's spawner); the grader's sandbox
passes it on and mounts the folder read-only.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from fr_utils.errors import DatasetError
from fr_utils.images import is_image_file


def cast_dir() -> Path:
    """The folder of the sample cast inside the installed package.

    Raises:
        FileNotFoundError: the package was installed without its data (names the folder).
    """
    root = importlib.resources.files("fr_utils") / "cast"
    if not isinstance(root, Path):  # a zipped install: the photos need real files for PIL/MTCNN
        raise FileNotFoundError(f"{root}: fr_utils is installed as an archive; install it unzipped (pip install fr_utils)")
    if not (root / "people").is_dir():
        raise FileNotFoundError(
            f"{root / 'people'}: the sample cast is missing from this fr_utils installation "
            "(reinstall the wheel; it ships fr_utils/cast/people/<Name>/<Name>_0001.jpg)"
        )
    return root


CAST_ENV = "FR_CAST_DIR"
"""The environment variable naming the course's cast folder (unset or empty: the shipped cast)."""


def people_dir() -> Path:
    """The course's cast folder: ``$FR_CAST_DIR`` (made absolute) if set, else the shipped
    ``cast_dir() / "people"``.  The only reader of :data:`CAST_ENV`.

    Raises:
        FileNotFoundError: ``$FR_CAST_DIR`` is set but is not a folder (names it and the variable).
    """
    configured = os.environ.get(CAST_ENV, "").strip()
    if not configured:
        return cast_dir() / "people"
    folder = Path(configured).expanduser().absolute()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: not a folder ({CAST_ENV}={configured!r} names the course's cast, one folder per "
            f"person, <name>/*.jpg; unset it for the shipped cast)"
        )
    return folder


def sample_cast(directory: Path | str | None = None) -> dict[str, list[Path]]:
    """The cast's photos by person: ``{name: [path, ...]}``, names and paths sorted.

    ``directory`` holds one folder per person (default: the course's cast, :func:`people_dir`).

    Raises:
        FileNotFoundError: the folder is missing or holds no photos (names it).
    """
    root = Path(directory) if directory is not None else people_dir()
    cast = {
        person.name: sorted(p for p in person.iterdir() if is_image_file(p))
        for person in sorted(root.iterdir()) if person.is_dir()
    } if root.is_dir() else {}
    cast = {name: photos for name, photos in cast.items() if photos}
    if not cast:
        raise FileNotFoundError(f"{root}: the cast is missing or holds no photos (expected <Name>/<Name>_0001.jpg)")
    return cast


def sample_photo(name: str, number: int = 1) -> Path:
    """``people/<name>/<name>_000<number>.jpg`` of the shipped cast.

    Raises:
        FileNotFoundError: no such photo (names the path and the people the cast has).
    """
    path = cast_dir() / "people" / name / f"{name}_{number:04d}.jpg"
    if not path.is_file():
        people = ", ".join(sample_cast())
        raise FileNotFoundError(f"{path}: no such photo in the sample cast (people: {people})")
    return path


def other_photo(filename: str) -> Path:
    """``other/<filename>`` of the shipped cast (``no_face_coffee.jpg``, ``two_faces_hopper_collins.jpg``).

    Raises:
        FileNotFoundError: no such photo (names the path and the files there).
    """
    folder = cast_dir() / "other"
    path = folder / filename
    if not path.is_file():
        have = ", ".join(sorted(p.name for p in folder.iterdir())) if folder.is_dir() else "none"
        raise FileNotFoundError(f"{path}: no such photo in the sample cast (there: {have})")
    return path


# Roles: no notebook, check or hidden test names a person of the cast.  The roles are derived
# from the sorted listing of sample_cast():
#   "twice"       the first person, by name, with two or more photos (the same-person pairs)
#   "other:<j>"   the j-th of the others (modulo their number)
# and photos are written "twice:<k>", "other:<j>:<k>" (that person's k-th photo, modulo their
# number), "cast:<j>:<k>" (the listing's j-th person) or a path below cast_dir() ("other/...":
# the shipped photos without a face and with two faces, whatever the cast).


def cast_people() -> list[tuple[str, list[Path]]]:
    """The course's cast as ``[(name, [photos])]``, sorted by name."""
    return sorted(sample_cast().items())


def _twice_and_others() -> tuple[tuple[str, list[Path]], list[tuple[str, list[Path]]]]:
    people = cast_people()
    for index, (name, photos) in enumerate(people):
        if len(photos) >= 2:
            return (name, photos), people[:index] + people[index + 1:]
    raise DatasetError(f"{people_dir()}: nobody in the cast has 2 or more photos "
                       "(python -m fr_utils.cast check names what the cast needs)")


def cast_name(spec: str) -> str:
    """The name a role stands for: ``"twice"`` or ``"other:<j>"`` (see above).

    Raises:
        ValueError: not a role (names it); DatasetError: nobody in the cast has 2 photos.
    """
    twice, others = _twice_and_others()
    if spec == "twice":
        return twice[0]
    kind, _, j = str(spec).partition(":")
    if kind == "other" and j.lstrip("-").isdigit() and others:
        return others[int(j) % len(others)][0]
    raise ValueError(f"{spec!r}: not a cast role (expected 'twice' or 'other:<j>')")


def cast_photo(spec: str) -> Path:
    """The photo a spec stands for: ``"twice:<k>"``, ``"other:<j>:<k>"``, ``"cast:<j>:<k>"``, or a
    path below :func:`cast_dir` (the shipped ``other/`` photos).

    Raises:
        ValueError: not a photo spec (names it); DatasetError: nobody in the cast has 2 photos.
    """
    parts = str(spec).split(":")
    if len(parts) == 1:
        return cast_dir() / spec
    twice, others = _twice_and_others()
    if parts[0] == "twice" and len(parts) == 2:
        photos = twice[1]
    elif parts[0] == "other" and len(parts) == 3 and others:
        photos = others[int(parts[1]) % len(others)][1]
    elif parts[0] == "cast" and len(parts) == 3:
        people = cast_people()
        photos = people[int(parts[1]) % len(people)][1]
    else:
        raise ValueError(f"{spec!r}: not a cast photo (expected 'twice:<k>', 'other:<j>:<k>' or 'cast:<j>:<k>')")
    return photos[int(parts[-1]) % len(photos)]
