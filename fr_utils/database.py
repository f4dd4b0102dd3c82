"""A persistent face database: enrol people, then verify (1:1) and identify (1:K).

:class:`FaceDatabase` keeps face embeddings in an SQLite file (standard library
``sqlite3``) or in memory (``path=None``, for notebooks)::

    with FaceDatabase("faces.db") as db:
        db.enroll("Barack_Obama", "fr_utils/cast/people/Barack_Obama/Barack_Obama_0001.jpg")
        db.enroll_tree("fr_utils/cast/people")                # <root>/<name>/*.jpg
        db.verify("photo.jpg", "Barack_Obama")           # (distance, is_match)
        db.identify("photo.jpg")                         # (name or None, distance)

How a photo is compared. Each photo is encoded as ``fr_utils.img_to_encoding``
does (MTCNN, the door's face: the largest, or the most central of faces about as large; a margin proportional to its box, 160x160), giving a (128,) unit
vector. A person may have several embeddings (several photos); the **distance
to a person is the smallest distance to any of their embeddings**. Two metrics:

* ``"euclidean"`` (default): the L2 distance ``||a - b||``, in [0, 2] for unit vectors;
* ``"cosine"``: ``1 - cos(a, b)``, in [0, 2].

For unit vectors ``||a - b||^2 = 2 - 2 cos(a, b)``, so ``cosine = euclidean^2 / 2``:
both rank people identically, and a euclidean threshold ``t`` is the cosine
threshold ``t^2 / 2`` (same decisions). A claim matches when
``distance < threshold`` (:func:`fr_utils.matching.is_match`, the one rule of the
notebooks, ``fr_utils.api``, ``fr_utils.evaluate`` and ``facedoor``). The default threshold is the one chosen for the
bundled model on LFW View 1 (``pairsDevTrain.txt``) and recorded in its
manifest (key ``verification``), converted to the metric in use.

Safety. The database records the model it was built with (name, weights
sha256, embedding size) and refuses to answer with another. Writes are
transactions, committed image batch by image batch, so a process killed during
a bulk enrol leaves everything committed before it readable. The file is in
WAL mode with a busy timeout, so other processes may read while one writes. A
file that is not a face database (another program's SQLite file, an image, a
damaged file) raises :class:`FaceDatabaseError` naming it and is never written to;
nothing is written to a file that fails SQLite's ``quick_check`` either, and a
read-only file or folder is opened read-only (reading works). Embeddings must be
unit vectors; each image is stored once per person, even from concurrent
processes (a unique index); names are NFC, without invisible characters; a
removed person leaves no bytes behind (``secure_delete`` and a WAL checkpoint).
See docs/door.md, "Under faults and attacks".
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import unicodedata
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from fr_utils.errors import (
    EmptyDatabaseError,
    EnrolmentRefused,
    FaceDatabaseError,
    FaceImageError,
    ModelMismatchError,
    SimilarFaceWarning,
    SimilarNameWarning,
    SkippedImagesWarning,
    UnknownPersonError,
    WeightsError,
)
from fr_utils.face_store import UNIQUE_IMAGES, checkpoint, connect, integrity_problem, sqlite_error, utc_now
from fr_utils.images import IMAGE_SUFFIXES, is_image_file, read_image_bytes
from fr_utils.matching import check_metric, check_threshold, default_threshold, distances_to, is_match
from fr_utils.weights import is_pretrained, model_identity

__all__ = ["FaceDatabase", "check_name", "image_files", "name_skeleton"]

MAX_NAME_LENGTH = 200
#: How far from 1 an embedding's L2 norm may be: the encoder's outputs are unit
#: vectors, and distances and thresholds in (0, 2) only mean something between unit vectors.
UNIT_NORM_TOLERANCE = 1e-3
# Unicode categories refused in names: controls, format characters (zero-width
# spaces and joiners, bidirectional overrides and isolates, soft hyphen), surrogates,
# private use, unassigned, line and paragraph separators.
_REFUSED_CATEGORIES = {"Cc": "a control character", "Cf": "an invisible formatting character",
                       "Cs": "a surrogate", "Co": "a private-use character", "Cn": "an unassigned code point",
                       "Zl": "a line separator", "Zp": "a paragraph separator"}
# Letters of other scripts that print like Latin ones (after case folding), and digits
# that print like letters: enough to catch "Barack" written with a Cyrillic "а".
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "һ": "h", "ӏ": "l", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j", "0": "o", "1": "l",
    "|": "l", "ı": "i", "ℓ": "l", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-",
})


# --------------------------------------------------------------------------- the database


def check_name(name: str) -> str:
    """A person's name, normalised: returns its NFC form (so "José" typed with a combining
    accent is the same person as "José" typed with "é").

    A name is a non-empty string of at most 200 characters, without surrounding spaces,
    control characters, invisible formatting characters (zero-width spaces and joiners,
    bidirectional overrides), spaces other than U+0020, private-use or unassigned code
    points. Names are case-sensitive. ValueError, naming the character and its position,
    otherwise.
    """
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be a string, got {type(name).__name__}")
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise ValueError(f"a person's name must not be empty, got {name!r}")
    if name != name.strip():
        raise ValueError(f"a person's name must not start or end with spaces: {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a person's name must have at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    for i, c in enumerate(name):
        category = unicodedata.category(c)
        what = _REFUSED_CATEGORIES.get(category)
        if what is None and category == "Zs" and c != " ":
            what = "a space other than the ordinary one"
        if what is not None:
            label = unicodedata.name(c, "no name")
            raise ValueError(
                f"a person's name must not contain {what}: {name!r} has U+{ord(c):04X} ({label}) "
                f"at position {i}"
            )
    return name


def _lookup_key(name: object) -> object:
    """A name as it is stored (NFC), for looking it up; other values unchanged."""
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


@functools.lru_cache(maxsize=1 << 16)
def name_skeleton(name: str) -> str:
    """What a name looks like, for spotting confusable names: case folded, accents
    dropped, letters of other scripts that print like Latin ones (Cyrillic "а", Greek
    "ο", ...) and the digits 0 and 1 replaced by those letters, "_" read as a space.
    Two different names with the same skeleton may be taken for one another."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(plain.translate(_HOMOGLYPHS).replace("_", " ").split())


def _image_digest(image) -> str | None:
    """sha256 of a file's bytes, of bytes, or of an array's pixels; None when unreadable."""
    try:
        if isinstance(image, (str, os.PathLike)):
            return hashlib.sha256(read_image_bytes(image)[1]).hexdigest()
        if isinstance(image, (bytes, bytearray, memoryview)):
            return hashlib.sha256(bytes(image)).hexdigest()
        if isinstance(image, np.ndarray):
            arr = np.ascontiguousarray(image)
            return hashlib.sha256(repr((arr.shape, arr.dtype.str)).encode() + arr.tobytes()).hexdigest()
    except (OSError, ValueError):  # FaceImageError is a ValueError: load_image will report it
        return None
    return None


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, hidden files excluded), sorted."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p))


def _as_image_list(images) -> tuple[list, bool]:
    """(images, given_as_one): a folder expands to its image files."""
    from PIL import Image

    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        files = image_files(images)
        if not files:
            raise ValueError(
                f"{images}: no image files in this folder (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        return files, False
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image)):
        return [images], True
    if isinstance(images, Iterable):
        items = list(images)
        if not items:
            raise ValueError("no images given (an empty list)")
        return items, False
    raise ValueError(f"expected an image, a list of images or a folder, got {type(images).__name__}")


class FaceDatabase:
    """Enrolled people and their face embeddings, in an SQLite file or in memory.

    Args:
        path: the database file, created on first use if missing (its folder must
            exist); ``None`` for an in-memory database that lives as long as the object.
        model: the encoder; ``None`` uses ``fr_utils.load_facenet()``, loaded only
            when an image must be encoded (listing or removing people never loads it).
        metric: ``"euclidean"`` (L2, default) or ``"cosine"`` (1 - cos); see the module doc.
        threshold: a claim matches when ``distance < threshold`` (``is_match``), in (0, 2). ``None``
            uses the bundled model's threshold from its manifest (converted to ``metric``).
        create: if False, a missing or empty file raises :class:`FaceDatabaseError`
            instead of being initialised.
        read_only: open the file read-only (listing, verifying and identifying work,
            writes raise :class:`FaceDatabaseError`). A file that this user cannot
            write, or whose folder they cannot write, is opened read-only anyway.

    Raises:
        FaceDatabaseError: the file exists but is not a face database (another
            application's SQLite file, an image, a damaged file), was made by a newer
            version, or cannot be created. The file is not modified.
        ValueError: unknown metric or a threshold outside (0, 2].
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        model=None,
        *,
        metric: str = "euclidean",
        threshold: float | None = None,
        create: bool = True,
        read_only: bool = False,
    ):
        self.metric = metric
        self.threshold = threshold
        self.path = None if path is None else Path(path)
        self._model = model
        self._identity: dict | None = None
        self._checked = False
        self._cache = None
        self._conn: sqlite3.Connection | None = None
        self._sound = False  # passed an integrity check on this connection
        self._conn, self.read_only = connect(self.path, create, read_only)

    # ----------------------------------------------------------------- settings

    @property
    def metric(self) -> str:
        """``"euclidean"`` or ``"cosine"``."""
        return self._metric

    @metric.setter
    def metric(self, value: str) -> None:
        self._metric = check_metric(value)

    @property
    def threshold(self) -> float:
        """The decision threshold in the current metric (the model's default unless set)."""
        if self._threshold is not None:
            return self._threshold
        if not self._uses_bundled_model():
            raise ValueError(
                "this database's encoder is not the bundled model, so there is no calibrated "
                "default threshold: pass threshold= (a distance in (0, 2))"
            )
        return default_threshold(self.metric, model=self._model)  # None: the default encoder

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._threshold = check_threshold(value)

    @property
    def model(self):
        """The encoder (loaded on first use when none was given)."""
        if self._model is None:
            from fr_utils.weights import load_facenet

            self._model = load_facenet()
        return self._model

    @property
    def name(self) -> str:
        """The file's name for messages (``<in-memory database>`` without a file)."""
        return "<in-memory database>" if self.path is None else str(self.path)

    # ----------------------------------------------------------------- plumbing

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise FaceDatabaseError(f"{self.name}: the database is closed")
        return self._conn

    def _query(self, sql: str, params: Sequence = (), doing: str = "read the database") -> list:
        try:
            return self._db().execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise sqlite_error(self.name, err, doing) from err

    def _meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def _write(self, doing: str, statements) -> None:
        """Run ``statements(conn)`` in one transaction (all or nothing).

        Nothing is written to a file opened read-only, nor to one that fails SQLite's
        ``quick_check`` (checked before this connection's first write)."""
        conn = self._db()
        if self.read_only:
            raise FaceDatabaseError(
                f"{self.name}: cannot {doing}: the file was opened read-only (it or its folder is not "
                "writable by this user); listing, verifying and identifying still work"
            )
        if not self._sound and self.path is not None:
            problem = integrity_problem(conn)
            if problem is not None:
                raise FaceDatabaseError(
                    f"{self.name}: cannot {doing}: the file is damaged (SQLite's integrity check: "
                    f"{problem}); it was left untouched. Restore it from a backup, or enrol everyone "
                    "again in a new file."
                )
            self._sound = True
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                statements(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise sqlite_error(self.name, err, doing) from err
        finally:
            self._cache = None

    # ----------------------------------------------------------------- the model

    def _uses_bundled_model(self) -> bool:
        return self._model is None or is_pretrained(self._model)

    def model_identity(self) -> dict:
        """``{'model_name', 'weights_sha256', 'embedding_size'}`` of the encoder in use.

        For the bundled model these come from its manifest (TensorFlow is not
        loaded); for another model, its name and the sha256 of its weight values.
        """
        if self._identity is None:
            self._identity = model_identity(self._model)
        return self._identity

    def _check_model(self) -> dict:
        """Record the encoder in a new database, or check it is the one it was built with."""
        ours = self.model_identity()
        if self._checked:
            return ours
        meta = self._meta()
        if "weights_sha256" not in meta:
            if self.read_only:  # an empty database: nothing to compare with, nothing to record
                return ours
            self._write("record the model", lambda c: c.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, str(v)) for k, v in ours.items()],
            ))
            self._checked = True
            return ours
        stored = {k: meta.get(k) for k in ours}
        if stored != {k: str(v) for k, v in ours.items()}:
            raise ModelMismatchError(
                f"{self.name} was built with the model {stored['model_name']!r} (weights sha256 "
                f"{stored['weights_sha256']}, embeddings of {stored['embedding_size']}), but the model "
                f"in use is {ours['model_name']!r} (weights sha256 {ours['weights_sha256']}, embeddings "
                f"of {ours['embedding_size']}). Distances between the two mean nothing: use the model "
                "the database was built with, or enrol everyone again in a new database."
            )
        self._checked = True
        return ours

    # ----------------------------------------------------------------- people

    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return [r[0] for r in self._query("SELECT name FROM people ORDER BY name")]

    def __len__(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM people")[0][0])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._query("SELECT 1 FROM people WHERE name = ?", (_lookup_key(name),)))

    def __iter__(self):
        return iter(self.names())

    def people(self) -> list[dict]:
        """One dict per person, sorted by name: ``name``, ``embeddings`` (count),
        ``enrolled`` and ``updated`` (UTC ISO 8601 times)."""
        rows = self._query(
            "SELECT p.name, COUNT(e.id), p.enrolled, MAX(e.added) FROM people p "
            "LEFT JOIN embeddings e ON e.person_id = p.id GROUP BY p.id ORDER BY p.name"
        )
        return [{"name": n, "embeddings": int(k), "enrolled": t, "updated": u} for n, k, t, u in rows]

    def info(self) -> dict:
        """The database's metadata: schema version, creation time, model name,
        weights sha256 and embedding size (the last three once someone is enrolled)."""
        return self._meta()

    def embeddings(self, name: str) -> np.ndarray:
        """The stored embeddings of ``name``, shape (k, d), in the order they were added."""
        pid = self._person_id(name)
        rows = self._query("SELECT vector FROM embeddings WHERE person_id = ? ORDER BY id", (pid,))
        size = int(self._meta().get("embedding_size", 0)) or None
        stored = np.stack([self._vector(r[0], size) for r in rows])
        self._check_stored_norms(stored, [name] * len(stored))
        return stored

    def _person_id(self, name: str) -> int:
        rows = self._query("SELECT id FROM people WHERE name = ?", (_lookup_key(name),))
        if not rows:
            raise UnknownPersonError(self._unknown(name))
        return int(rows[0][0])

    def _unknown(self, name: str) -> str:
        names = self.names()
        if not names:
            return f"{name!r} is not enrolled: {self.name} is empty (enrol someone first)"
        close = [n for n in names if n.lower() == str(name).lower()]
        hint = f"; did you mean {close[0]!r}?" if close else f" ({len(names)} people enrolled)"
        return f"{name!r} is not enrolled in {self.name}{hint}"

    def remove(self, name: str) -> int:
        """Delete a person and all their embeddings; returns how many embeddings went.

        No bytes of them are left behind: the connection asks for ``secure_delete``
        (deleted rows are overwritten with zeros) and the write-ahead log, which holds
        copies of the pages written since the last checkpoint, is copied into the file
        and emptied. If a reader in another process keeps part of the log, that part is
        emptied by a later write or when the last connection closes.
        """
        pid = self._person_id(name)
        count = int(self._query("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (pid,))[0][0])
        self._write(f"remove {name!r}", lambda c: c.execute("DELETE FROM people WHERE id = ?", (pid,)))
        self._checkpoint()
        return count

    def _checkpoint(self) -> bool:
        if self.path is None:
            return True
        try:
            return checkpoint(self._db())
        except sqlite3.Error as err:
            raise sqlite_error(self.name, err, "empty the write-ahead log") from err

    def rename(self, old: str, new: str, *, strict: bool = False) -> None:
        """Rename a person. ValueError if ``new`` is already enrolled or not a valid name;
        :class:`SimilarNameWarning` (with ``strict``: :class:`EnrolmentRefused`) if it is
        confusable with another enrolled name."""
        new = check_name(new)
        pid = self._person_id(old)
        if new in self and new != _lookup_key(old):
            raise ValueError(f"cannot rename {old!r} to {new!r}: {new!r} is already enrolled")
        self._check_similar_name(new, strict, ignore=_lookup_key(old))
        self._write(f"rename {old!r}", lambda c: c.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid)))
        self._checkpoint()

    def _check_similar_name(self, name: str, strict: bool, ignore: object = None) -> None:
        """Warn (or refuse, if strict) a new name that prints like an enrolled one."""
        if name in self:
            return
        skeleton = name_skeleton(name)
        for other in self.names():
            if other != ignore and name_skeleton(other) == skeleton:
                message = (f"the name {name!r} looks like {other!r}, who is already enrolled in {self.name} "
                           "(they differ only in case, accents, spacing or look-alike letters); "
                           "if they are the same person, use the existing name")
                if strict:
                    raise EnrolmentRefused(f"refused (strict): {message}")
                warnings.warn(SimilarNameWarning(message, other), stacklevel=3)
                return

    # ----------------------------------------------------------------- enrolling

    def add_embeddings(
        self,
        name: str,
        embeddings: np.ndarray,
        sources: Sequence[str | None] | None = None,
        digests: Sequence[str | None] | None = None,
        *,
        strict: bool = False,
    ) -> int:
        """Store already-computed embeddings for ``name`` (created if new), in one transaction.

        Args:
            embeddings: (k, d) or (d,) unit vectors (L2 norm 1 within
                :data:`UNIT_NORM_TOLERANCE`, as the encoder outputs) of this database's
                model. Zero, non-unit, non-finite or wrong-size vectors are refused: a zero
                vector would be at distance 1 from every face, and open the door to anyone.
            sources: k file names (or None) recorded with each embedding.
            digests: k image sha256 values (or None): an image already stored for this
                person is skipped, atomically (a unique index), even when two processes
                enrol the same photos at once.
            strict: refuse (:class:`EnrolmentRefused`) a new name confusable with an
                enrolled one instead of warning (:class:`SimilarNameWarning`).
        Returns:
            The number of embeddings added (those of images already stored are not).
        """
        name = check_name(name)
        ident = self._check_model()
        e = self._check_embeddings(embeddings, int(ident["embedding_size"]))
        sources = list(sources) if sources is not None else [None] * len(e)
        digests = list(digests) if digests is not None else [None] * len(e)
        if len(sources) != len(e) or len(digests) != len(e):
            raise ValueError(f"{len(e)} embeddings but {len(sources)} sources and {len(digests)} digests")
        self._check_similar_name(name, strict)
        inserted: list[int] = []

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("SAVEPOINT unique_images")  # files made before the index may hold duplicates
            try:
                conn.execute(UNIQUE_IMAGES)
                conn.execute("RELEASE unique_images")
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK TO unique_images")
                conn.execute("RELEASE unique_images")
            now = utc_now()
            conn.execute("INSERT OR IGNORE INTO people (name, enrolled) VALUES (?, ?)", (name, now))
            pid = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            inserted.clear()
            for i, (v, src, d) in enumerate(zip(e, sources, digests)):
                cursor = conn.execute(
                    "INSERT INTO embeddings (person_id, vector, source, image_sha256, added) "
                    "SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM embeddings WHERE person_id = ? AND image_sha256 = ?)",
                    (pid, v.astype("<f4").tobytes(), src, d, now, pid, d),
                )
                if cursor.rowcount:
                    inserted.append(i)

        cached = self._cache
        self._write(f"enrol {name!r}", insert)
        if cached is not None and self._query("PRAGMA data_version")[0][0] == cached[0]:
            # nobody else wrote since the gallery was read: extend it instead of reading it all again
            # (a bulk enrol checks each batch against everyone, see _check_similar_faces)
            self._cache = (cached[0], _extend_gallery(cached[1], name, e[inserted]))
        return len(inserted)

    def _check_embeddings(self, embeddings, size: int) -> np.ndarray:
        """(k, size) float32 unit vectors, or ValueError naming the first bad row."""
        try:
            e = np.asarray(embeddings, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"embeddings must be an array of numbers, got {type(embeddings).__name__} ({err})") from None
        if e.ndim == 1:
            e = e[None]
        if e.ndim != 2 or e.shape[1] != size or len(e) == 0:
            raise ValueError(f"embeddings must have shape (k, {size}) with k >= 1, got {np.shape(embeddings)}")
        finite = np.isfinite(e).all(axis=1)
        if not finite.all():
            raise ValueError(f"embeddings must be finite: row {int(np.argmin(finite))} holds NaN or infinity")
        norms = np.linalg.norm(e.astype(np.float64), axis=1)
        bad = np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"embeddings must be unit vectors (L2 norm 1, as the encoder outputs): row {i} has norm "
                f"{norms[i]:.6g}. Distances and thresholds mean nothing otherwise (a zero vector is at "
                "distance 1 from every face); normalise with e / np.linalg.norm(e)"
            )
        return e

    def _check_stored_norms(self, matrix: np.ndarray, names: Sequence[str]) -> None:
        if len(matrix) == 0:
            return
        norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
        bad = ~(np.abs(norms - 1.0) <= UNIT_NORM_TOLERANCE)  # NaN is bad too
        if bad.any():
            i = int(np.argmax(bad))
            raise FaceDatabaseError(
                f"{self.name}: a stored embedding of {names[i]!r} is not a unit vector (norm {norms[i]:.6g}); "
                "the file was altered outside fr_utils. Remove that person and enrol them again."
            )

    def _stored_digests(self, name: str) -> set[str]:
        rows = self._query(
            "SELECT e.image_sha256 FROM embeddings e JOIN people p ON p.id = e.person_id "
            "WHERE p.name = ? AND e.image_sha256 IS NOT NULL", (name,)
        )
        return {r[0] for r in rows}

    def enroll(self, name: str, images, *, batch_size: int = 16, progress: bool | None = False,
               strict: bool = False) -> int:
        """Add photos of one person (created if new; more photos add more embeddings).

        Args:
            name: the person's name (see :func:`check_name`).
            images: one image (a path, bytes, RGB array or Pillow image), a list of
                them, or a folder of that person's photos (its image files, sorted).
                Each photo's face (the door's, as ``img_to_encoding`` chooses it) is encoded (``img_to_encoding``'s pipeline).
            batch_size: images encoded and committed together: a process killed
                during a bulk enrol keeps every batch committed before.
            progress: show a progress bar (True), or not.
            strict: refuse (:class:`EnrolmentRefused`) instead of warning when a photo's
                face is within the threshold of another enrolled person, or the name is
                confusable with an enrolled one; the batch with that photo is not stored.
        Returns:
            The number of embeddings added. Images already enrolled for this person
            (same file content) are skipped, so enrolling a folder again only adds new photos.
        Raises:
            NoFaceError, FaceImageError: a single image had no face or could not be
                read, or none of several images could be used (the message names
                every file and why); nothing is added then.
            ValueError: a bad name, no images, or a folder without image files.
            ModelMismatchError: the database was built with another model.
        Warns:
            SkippedImagesWarning: with several images, those without a face or
                unreadable were skipped (listed, with the reason) and the rest enrolled.
            SimilarFaceWarning: a photo's face is within the threshold of another
                enrolled person (it would open the door as them): a wrong photo or name?
            SimilarNameWarning: the new name prints like an enrolled one.
        """
        name = check_name(name)
        items, single = _as_image_list(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._check_model()
        known = self._stored_digests(name)
        todo, duplicates = [], 0
        for img in items:
            digest = _image_digest(img)
            if digest is not None and digest in known:
                duplicates += 1
                continue
            if digest is not None:
                known.add(digest)
            todo.append((img, digest))
        from fr_utils.encoding import encode_batch, progress_bar

        added, skipped = 0, []
        with progress_bar(len(todo), bool(progress), f"enrolling {name}") as bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                encoded = encode_batch([img for img, _ in batch], self.model, batch_size=batch_size,
                                       on_bad="raise" if single else "skip", progress=False)
                skipped += [(image, why) for _, image, why in encoded.skipped]
                if encoded.indices:
                    sources = [_source_name(batch[i][0]) for i in encoded.indices]
                    self._check_similar_faces(name, encoded.embeddings,
                                              [s or f"image {start + i + 1}" for s, i in zip(sources, encoded.indices)],
                                              strict)
                    added += self.add_embeddings(
                        name, encoded.embeddings, sources=sources,
                        digests=[batch[i][1] for i in encoded.indices], strict=strict,
                    )
                bar.update(len(batch))
        if skipped and added == 0 and duplicates == 0:
            listing = "; ".join(f"{f}: {why}" for f, why in skipped)
            raise FaceImageError(f"nothing enrolled for {name!r}: no usable image ({listing})")
        if skipped:
            listing = "; ".join(f"{f}: {why}" for f, why in skipped)
            warnings.warn(
                SkippedImagesWarning(f"{len(skipped)} image(s) skipped while enrolling {name!r}: {listing}", skipped),
                stacklevel=2,
            )
        return added

    def _check_similar_faces(self, name: str, embeddings: np.ndarray, sources: list[str], strict: bool) -> None:
        """Warn (or refuse, if strict) photos of ``name`` whose face matches another enrolled person."""
        try:
            threshold = self.threshold
        except (ValueError, WeightsError):  # another encoder and no threshold given: no notion of a match
            return
        names, starts, matrix, squared = self._gallery()
        if not names:
            return
        matches = []
        for source, e in zip(sources, np.asarray(embeddings, dtype=np.float64)):
            # float32 ranking (as nearest() ranks), exact float64 for the one reported
            per_person = self._rough_per_person(matrix, squared, starts, e)
            for j in np.argsort(per_person, kind="stable"):
                if not is_match(per_person[j] - 1e-6, threshold):  # float32 ranking: 1e-6 slack, the exact distance decides
                    break
                if names[j] != name:
                    exact = float(distances_to(matrix[starts[j] : starts[j + 1]], e, self.metric).min())
                    if is_match(exact, threshold):
                        matches.append((source, names[j], exact))
                        break
        if not matches:
            return
        listing = "; ".join(f"{src} matches {other!r} (distance {d:.3f} < threshold {threshold:.3f})"
                            for src, other, d in matches)
        message = (f"enrolling {name!r}: {len(matches)} photo(s) already match another enrolled person, so "
                   f"that face would open the door as both: {listing}. Check the photo and the name")
        if strict:
            raise EnrolmentRefused(f"refused (strict): {message}; nothing of these photos was stored")
        warnings.warn(SimilarFaceWarning(message, matches), stacklevel=3)

    def enroll_tree(self, root: str | os.PathLike, *, batch_size: int = 16, progress: bool | None = False,
                    strict: bool = False) -> dict[str, int]:
        """Enrol every ``<root>/<name>/`` folder as the person ``<name>``.

        Returns:
            ``{name: embeddings added}`` for every folder, sorted by name.
        Raises:
            ValueError: ``root`` is not a folder or holds no person folders.
        Warns:
            SkippedImagesWarning: per person, as in :meth:`enroll`; a person folder
            with no usable image is reported the same way and skipped.
        """
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder (expected <root>/<name>/*.jpg)")
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        folders = [p for p in folders if image_files(p)]
        if not folders:
            raise ValueError(f"{root}: no person folders with images (expected <root>/<name>/*.jpg)")
        added: dict[str, int] = {}
        for folder in folders:
            try:
                added[folder.name] = self.enroll(folder.name, folder, batch_size=batch_size, progress=progress,
                                                 strict=strict)
            except FaceImageError as err:
                warnings.warn(SkippedImagesWarning(str(err), [(str(folder), str(err))]), stacklevel=2)
                added[folder.name] = 0
        return added

    # ----------------------------------------------------------------- searching

    def _gallery(self):
        """(names (P,), starts (P + 1,), matrix (n, d) float32, squared norms (n,) float64) of
        everyone, rows grouped by person (person i owns rows starts[i]:starts[i + 1]).
        Cached; reloaded when this or another process changed the database."""
        version = self._query("PRAGMA data_version")[0][0]
        if self._cache is not None and self._cache[0] == version:
            return self._cache[1]
        rows = self._query(
            "SELECT p.name, e.vector FROM embeddings e JOIN people p ON p.id = e.person_id "
            "ORDER BY p.name, e.id"
        )
        size = int(self._meta().get("embedding_size", 0)) or None
        names, starts, vectors = [], [], []
        for i, (name, blob) in enumerate(rows):
            if not names or names[-1] != name:
                names.append(name)
                starts.append(i)
            vectors.append(self._vector(blob, size))
        matrix = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 0), np.float32)
        self._check_stored_norms(matrix, [r[0] for r in rows])
        squared = np.einsum("ij,ij->i", matrix.astype(np.float64), matrix.astype(np.float64))
        gallery = (names, np.asarray(starts + [len(vectors)], dtype=np.int64), matrix, squared)
        self._cache = (version, gallery)
        return gallery

    def _vector(self, blob: bytes, size: int | None) -> np.ndarray:
        v = np.frombuffer(blob, dtype="<f4")
        if size is not None and v.size != size:
            raise FaceDatabaseError(f"{self.name}: an embedding of {v.size} values where {size} are expected; the file is damaged")
        return v

    def _embedding(self, embedding: np.ndarray) -> np.ndarray:
        e = np.asarray(embedding, dtype=np.float64)
        size = int(self.model_identity()["embedding_size"])
        if e.size != size or e.ndim > 2 or not np.all(np.isfinite(e)):
            raise ValueError(f"expected one finite embedding of {size} values, (d,) or (1, d), got shape {e.shape}")
        norm = float(np.linalg.norm(e))
        if abs(norm - 1.0) > UNIT_NORM_TOLERANCE:
            raise ValueError(f"expected a unit embedding (L2 norm 1, as the encoder outputs), got norm {norm:.6g}")
        return e.reshape(-1)


    def _rough_per_person(self, matrix, squared, starts, e) -> np.ndarray:
        """Each person's smallest distance to ``e``, ranked with one float32 matrix-vector
        product (memory-bound: float32 halves the bytes read); callers recompute the
        distances they report in float64."""
        dots = (matrix @ e.astype(np.float32)).astype(np.float64)
        if self.metric == "euclidean":
            rough = np.sqrt(np.maximum(squared + e @ e - 2.0 * dots, 0.0))
        else:
            rough = 1.0 - dots / np.maximum(np.sqrt(squared) * np.linalg.norm(e), 1e-12)
        return np.minimum.reduceat(rough, starts[:-1])
    def nearest(self, embedding: np.ndarray, k: int = 1) -> list[tuple[str, float]]:
        """The ``k`` enrolled people nearest to an embedding, nearest first.

        Args:
            embedding: (d,) or (1, d), from this database's model.
        Returns:
            ``[(name, distance), ...]``, at most ``k`` items; a person's distance is
            the minimum over their embeddings, in :attr:`metric`. The threshold is not applied.
        Raises:
            EmptyDatabaseError: no one is enrolled.
        """
        self._check_model()
        names, starts, matrix, squared = self._gallery()
        if not names:
            raise EmptyDatabaseError(f"{self.name}: no one is enrolled yet (enrol someone first)")
        e = self._embedding(embedding)
        # Rank with float32 products, then recompute the distances returned in float64.
        per_person = self._rough_per_person(matrix, squared, starts, e)
        k = max(1, min(int(k), len(names)))
        best = np.argpartition(per_person, k - 1)[:k] if k < len(names) else np.arange(len(names))
        exact = [float(distances_to(matrix[starts[i] : starts[i + 1]], e, self.metric).min()) for i in best]
        return sorted(((names[i], d) for i, d in zip(best, exact)), key=lambda item: item[1])

    def distance(self, embedding: np.ndarray, name: str) -> float:
        """Distance from an embedding (d,) to the person ``name`` (min over their embeddings)."""
        self._check_model()
        stored = self.embeddings(name)
        return float(distances_to(stored, self._embedding(embedding), self.metric).min())

    def encode(self, image) -> np.ndarray:
        """The embedding (d,) of the face of a photo (``img_to_encoding``'s choice), with this database's model
        (``fr_utils.img_to_encoding``). NoFaceError / FaceImageError name the file."""
        from fr_utils.encoding import img_to_encoding

        self._check_model()
        return img_to_encoding(image, self.model)[0]

    def verify(self, image, name: str) -> tuple[float, bool]:
        """Is the face of ``image`` (``img_to_encoding``'s) the person ``name``? (1:1, the door with a badge)

        Args:
            image: a path, bytes, RGB array (H, W, 3) or Pillow image of a photo.
        Returns:
            ``(distance, is_match)``: the distance to ``name`` (see :meth:`distance`)
            and ``distance < threshold`` (:func:`fr_utils.matching.is_match`).
        Raises:
            UnknownPersonError: ``name`` is not enrolled (checked before encoding).
            NoFaceError, FaceImageError: no face in the photo, or unreadable.
        """
        self._person_id(name)
        d = self.distance(self.encode(image), name)
        return d, bool(is_match(d, self.threshold))

    def identify(self, image) -> tuple[str | None, float]:
        """Who is the face of ``image`` (``img_to_encoding``'s)? (1:K, the door without a badge)

        Returns:
            ``(name, distance)`` of the nearest enrolled person, or ``(None, distance)``
            when even the nearest is not within the threshold (``distance >= threshold``).
        Raises:
            EmptyDatabaseError: no one is enrolled (checked before encoding).
            NoFaceError, FaceImageError: no face in the photo, or unreadable.
        """
        if len(self) == 0:
            raise EmptyDatabaseError(f"{self.name}: no one is enrolled yet (enrol someone first)")
        name, d = self.nearest(self.encode(image))[0]
        return (name if is_match(d, self.threshold) else None), d

    def identify_all(self, image) -> list[dict]:
        """Identify every face in a photo (``fr_utils.encoding.encode_faces``), largest first.

        Returns:
            One dict per face: ``box`` [x, y, w, h], ``confidence``, ``keypoints``,
            ``embedding`` (d,), ``name`` (None when unknown), ``distance`` (to the
            nearest person) and ``nearest`` (that person's name, even when unknown).
            ``[]`` when the photo has no face.
        Raises:
            EmptyDatabaseError: no one is enrolled.
        """
        from fr_utils.encoding import encode_faces

        if len(self) == 0:
            raise EmptyDatabaseError(f"{self.name}: no one is enrolled yet (enrol someone first)")
        self._check_model()
        threshold = self.threshold
        faces = []
        for face in encode_faces(image, self.model):
            nearest, d = self.nearest(face["embedding"])[0]
            faces.append(dict(face, name=nearest if is_match(d, threshold) else None, distance=d, nearest=nearest))
        return faces

    # ----------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the file (idempotent). Everything written is already committed."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._cache = None

    def __enter__(self) -> "FaceDatabase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()

    def __repr__(self) -> str:
        if self._conn is None:
            return f"FaceDatabase({self.name!r}, closed)"
        return f"FaceDatabase({self.name!r}, {len(self)} people, metric={self.metric!r})"


# --------------------------------------------------------------------------- helpers


def _extend_gallery(gallery, name: str, rows: np.ndarray):
    """The gallery (see ``FaceDatabase._gallery``) with ``rows`` appended to ``name``'s block,
    exactly as reading the file again would give it (people by name, rows by insertion)."""
    import bisect

    names, starts, matrix, squared = gallery
    if len(rows) == 0:
        return gallery
    rows = np.asarray(rows, dtype=np.float32)
    k = len(rows)
    j = bisect.bisect_left(names, name)
    if j < len(names) and names[j] == name:
        pos = int(starts[j + 1])
        new_names = names
        new_starts = starts.copy()
        new_starts[j + 1 :] += k
    else:
        pos = int(starts[j])
        new_names = names[:j] + [name] + names[j:]
        new_starts = np.concatenate([starts[: j + 1], starts[j:] + k])
    rows64 = rows.astype(np.float64)
    new_squared = np.concatenate([squared[:pos], np.einsum("ij,ij->i", rows64, rows64), squared[pos:]])
    new_matrix = rows if matrix.size == 0 else np.concatenate([matrix[:pos], rows, matrix[pos:]])
    return new_names, new_starts, new_matrix, new_squared


def _source_name(image) -> str | None:
    return str(image) if isinstance(image, (str, os.PathLike)) else None
