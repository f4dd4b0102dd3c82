"""``python -m fr_utils.cast check [DIR]``: is a folder of people usable as the course's cast?

The door notebook and its checks take their staff from a cast folder, one folder
per person, ``DIR/<name>/*.jpg`` (the layout of the shipped ``fr_utils/cast/people``).
An instructor who brings their own staff runs this first; it names every problem:

problems (the cast cannot be used; exit 1)
    fewer than :data:`MIN_PEOPLE` people; nobody with two or more photos (the
    same-person distances need them); a person folder without photos; a name that
    is not usable as an identifier (``Ada_Lovelace``, not ``Ada Lovelace``);
    two names differing only in case; a photo that cannot be read, without a
    face, with more than one face (a face less than half the size of the largest
    and under ``--min-face`` pixels, far behind, is ignored: the largest face is
    the one encoded), or whose face is smaller than ``--min-face`` pixels.
warnings (the cast works, but the door will not behave as the notebook says; exit 3)
    two photos of one person at least the threshold apart (the door would
    not open for them), two photos of different people closer than the threshold
    (it would open for the wrong one); a photo lying beside the person folders.

Every message names the photo or folder. :func:`check_cast` returns the same
findings for code (the notebooks can refuse a cast with the same words), and
:func:`require_usable_cast` raises them as one :class:`fr_utils.errors.DatasetError`.
The rule is the course's: a pair matches when ``distance < threshold``
(:func:`fr_utils.matching.is_match`), the threshold being the encoder's own (its manifest's).
"""

from __future__ import annotations

import argparse
import itertools
import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fr_utils.errors import DatasetError, FaceImageError, FrUtilsError, WeightsError, report
from fr_utils.images import is_image_file

PROG = "python -m fr_utils.cast"

#: A cast needs at least this many people (the door's 1:K lesson and its checks).
MIN_PEOPLE = 4

#: A face whose detected box is narrower or shorter than this (pixels) is too small:
#: the encoder's input is 160 x 160, and LFW faces are about 100 pixels high.
MIN_FACE = 64

EXIT_OK = 0        # a usable cast, no warnings
EXIT_PROBLEMS = 1  # the cast cannot be used: each problem is named
EXIT_USAGE = 2     # bad arguments, or DIR is not a folder
EXIT_WARNINGS = 3  # usable, but some distances lie on the wrong side of the threshold
EXIT_MODEL = 4     # the encoder's weights cannot be loaded

EPILOG = f"""\
DIR holds one folder per person, DIR/<name>/*.jpg (default: $FR_CAST_DIR, the
course's cast, else the shipped fr_utils/cast/people). Problems make the cast unusable; warnings say where the
door would answer wrongly with the default threshold (a match: distance < threshold).

exit codes:
  {EXIT_OK}  the cast is usable, no warnings
  {EXIT_PROBLEMS}  problems: fewer than {MIN_PEOPLE} people, nobody with 2+ photos, a name that is not an
     identifier, names differing only in case, a person without photos, a photo
     unreadable, without a face, with several faces, or with a face under --min-face px
  {EXIT_USAGE}  usage: bad option, DIR is not a folder
  {EXIT_WARNINGS}  usable, with warnings: a same-person pair not closer than the threshold, a
     different-person pair closer than it, a photo outside the person folders
  {EXIT_MODEL}  the encoder's weights are missing or damaged
"""

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass
class CastReport:
    """What :func:`check_cast` found.

    Attributes:
        folder: the cast folder checked.
        people: ``{name: [photo paths]}`` of the person folders, sorted.
        problems: messages that make the cast unusable, each naming a photo or folder.
        warnings: messages about distances or stray files, each naming them.
        threshold: the threshold the distances were judged by (None if not reached).
        same: ``(photo, photo, distance)`` of every same-person pair encoded.
        different: ``(photo, photo, distance)`` of every different-person pair encoded.
    """

    folder: Path
    people: dict[str, list[Path]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    threshold: float | None = None
    same: list[tuple[Path, Path, float]] = field(default_factory=list)
    different: list[tuple[Path, Path, float]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """No problems (warnings allowed)."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        return EXIT_PROBLEMS if self.problems else EXIT_WARNINGS if self.warnings else EXIT_OK


def identifier_problem(name: str) -> str | None:
    """Why ``name`` is not usable as a person's name in the course, or None.

    A name is used as a Python identifier in notebooks and hidden tests: ASCII
    letters, digits and ``_``, starting with a letter, not a keyword."""
    if _IDENTIFIER.fullmatch(name) and not keyword.iskeyword(name):
        return None
    if keyword.iskeyword(name):
        why = "a Python keyword"
    elif name[:1].isdigit():
        why = "it starts with a digit"
    else:
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "_"))})
        why = "it holds " + ", ".join(repr(c) for c in bad)
    suggestion = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_")
    if suggestion and suggestion[0].isdigit():
        suggestion = "P_" + suggestion
    hint = f", e.g. {suggestion!r}" if suggestion and _IDENTIFIER.fullmatch(suggestion) and not keyword.iskeyword(suggestion) else ""
    return (f"the name {name!r} is not usable as an identifier ({why}): use ASCII letters, digits "
            f"and _, starting with a letter; rename the folder{hint}")


def _list_people(report_: CastReport) -> None:
    folder = report_.folder
    entries = sorted(folder.iterdir())
    for stray in (p for p in entries if is_image_file(p)):
        report_.warnings.append(f"{stray}: a photo beside the person folders is ignored "
                                "(put it in <name>/ to make it someone's)")
    for person in (p for p in entries if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(p for p in person.iterdir() if is_image_file(p))
        if not photos:
            report_.problems.append(f"{person}: no photos in this person's folder "
                                    f"(expected {person.name}/*.jpg)")
            continue
        report_.people[person.name] = photos
        why = identifier_problem(person.name)
        if why:
            report_.problems.append(f"{person}: {why}")
    by_case: dict[str, list[str]] = {}
    for name in (p.name for p in entries if p.is_dir() and not p.name.startswith(".")):
        by_case.setdefault(name.casefold(), []).append(name)
    for names in by_case.values():
        if len(names) > 1:
            report_.problems.append(
                f"{folder}: the names {', '.join(map(repr, names))} differ only in case (one person "
                "twice? on a case-insensitive disk they are one folder): merge or rename them")
    if len(report_.people) < MIN_PEOPLE:
        report_.problems.append(f"{folder}: {len(report_.people)} people with photos, at least {MIN_PEOPLE} "
                                "are needed (one folder per person: <name>/*.jpg)")
    if report_.people and max(len(p) for p in report_.people.values()) < 2:
        report_.problems.append(f"{folder}: nobody has 2 or more photos; at least one person needs two "
                                "(the same-person distances of the door are measured on them)")


def _faces(report_: CastReport, min_face: int) -> list[tuple[str, Path, np.ndarray, dict]]:
    """(name, photo, RGB, face) of every photo with exactly one face large enough; problems for the others."""
    from fr_utils.detect import detect_faces
    from fr_utils.images import load_image

    usable = []
    for name, photos in report_.people.items():
        for photo in photos:
            try:
                rgb = load_image(photo)
            except FaceImageError as err:
                report_.problems.append(str(err))
                continue
            faces = detect_faces(rgb)
            if not faces:
                report_.problems.append(f"{photo}: no face found; each photo must show its person's face")
                continue
            side = min(faces[0]["box"][2:])  # the largest face; another counts unless far smaller
            people = [f for f in faces if min(f["box"][2:]) >= min(min_face, side / 2)]
            if len(people) > 1:
                boxes = "; ".join(str(f["box"]) for f in people)
                report_.problems.append(f"{photo}: {len(people)} faces found (boxes [x, y, w, h]: {boxes}); "
                                        "each photo must show one person only: crop it")
                continue
            if side < min_face:
                w, h = faces[0]["box"][2:]
                report_.problems.append(f"{photo}: the face is {w}x{h} pixels, smaller than {min_face}x{min_face}; "
                                        "use a larger or closer photo")
                continue
            usable.append((name, photo, rgb, faces[0]))
    return usable


def check_cast(folder: str | Path | None = None, model=None, *, threshold: float | None = None,
               min_face: int = MIN_FACE, faces: bool = True, distances: bool = True) -> CastReport:
    """Check a cast folder (``<folder>/<name>/*.jpg``; default: the course's cast).

    Args:
        folder: the cast; ``None`` for the course's, :func:`fr_utils.data.people_dir`
            (``$FR_CAST_DIR``, else the shipped ``fr_utils/cast/people``).
        model: the encoder (``fr_utils.load_facenet()`` when omitted).
        threshold: the L2 threshold the pairs are judged by; the model's by default.
        min_face: the smallest face accepted, in pixels (width and height of its box).
        faces: read every photo and find its face (False: the folders and names only).
        distances: also encode the faces and judge every pair (False: up to the faces).
    Returns:
        :class:`CastReport`; its ``problems`` and ``warnings`` name the photos and folders.
    Raises:
        DatasetError: ``folder`` is not a folder.
        WeightsError: the encoder cannot be loaded.
    """
    from fr_utils.matching import check_threshold, default_threshold, distances_to, is_match

    if folder is None:
        from fr_utils.data import people_dir

        folder = people_dir()
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (a cast is a folder of <name>/*.jpg)")
    result = CastReport(folder)
    _list_people(result)
    if not faces:
        return result
    found = _faces(result, int(min_face))
    if not distances or len(found) < 2:
        return result
    from fr_utils.align import align_face
    from fr_utils.encoding import encode_batch

    # the encoder's own threshold (the 512-number model's differs from the default's)
    result.threshold = check_threshold(threshold) if threshold is not None else default_threshold(model=model)
    embeddings = encode_batch(found, model, crop=lambda item: align_face(item[2], item[3]),
                              progress=False).embeddings
    for i, j in itertools.combinations(range(len(found)), 2):
        (a, pa, _, _), (b, pb, _, _) = found[i], found[j]
        d = float(distances_to(embeddings[i][None], embeddings[j])[0])
        if a == b:
            result.same.append((pa, pb, d))
            if not is_match(d, result.threshold):
                result.warnings.append(
                    f"{pa} and {pb}: the same person {d:.3f} apart, not closer than the threshold "
                    f"{result.threshold:.3f}: the door would not recognise {a} from one to the other")
        else:
            result.different.append((pa, pb, d))
            if is_match(d, result.threshold):
                result.warnings.append(
                    f"{pa} and {pb}: {a} and {b} are {d:.3f} apart, closer than the threshold "
                    f"{result.threshold:.3f}: the door would take one for the other")
    return result


def require_usable_cast(folder: str | Path | None = None, model=None, **kwargs) -> CastReport:
    """:func:`check_cast`, raising :class:`DatasetError` listing every problem when there is one."""
    result = check_cast(folder, model, **kwargs)
    if result.problems:
        raise DatasetError(f"{result.folder} is not usable as the cast ({len(result.problems)} problem(s)):\n  "
                           + "\n  ".join(result.problems))
    return result


def _summary(result: CastReport) -> str:
    people = len(result.people)
    photos = sum(len(p) for p in result.people.values())
    head = f"{result.folder}: {people} people, {photos} photos"
    if result.same or result.different:
        head += (f"; same person {_span(result.same)}, different people {_span(result.different)}, "
                 f"threshold {result.threshold:.3f}")
    if result.problems:
        return f"{head}\n{len(result.problems)} problem(s), {len(result.warnings)} warning(s): the cast cannot be used"
    if result.warnings:
        return f"{head}\n{len(result.warnings)} warning(s): the cast can be used, but the door will err as said"
    return f"{head}\nthe cast is usable"


def _span(pairs) -> str:
    if not pairs:
        return "no pairs"
    d = [p[2] for p in pairs]
    return f"{min(d):.3f} to {max(d):.3f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Tools for the course's cast of people.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="is DIR usable as the cast? names every problem",
                           description="Check that DIR (one folder per person) is usable as the course's cast.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("folder", nargs="?", metavar="DIR",
                       help="the cast (default: $FR_CAST_DIR, else the shipped one)")
    check.add_argument("--threshold", type=float, metavar="T",
                       help="judge the pairs by this L2 threshold (default: the model's)")
    check.add_argument("--min-face", type=int, default=MIN_FACE, metavar="PX",
                       help=f"smallest face accepted, in pixels (default {MIN_FACE})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m fr_utils.cast check [DIR]``; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse printed
        return int(exit_.code or 0)
    try:
        result = check_cast(args.folder, threshold=args.threshold, min_face=args.min_face)
    except WeightsError as err:
        return report(err, EXIT_MODEL, PROG)
    except (FrUtilsError, ValueError, OSError) as err:
        return report(err, EXIT_USAGE, PROG)
    for message in result.problems:
        print(f"problem: {message}")
    for message in result.warnings:
        print(f"warning: {message}")
    print(_summary(result))
    return result.exit_code
