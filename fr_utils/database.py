"""A persistent face database: enrol people, then verify (1:1) and identify (1:K).

:class:`FaceDatabase` keeps face embeddings in an SQLite file (standard library
``sqlite3``) or in memory (``path=None``, for notebooks)::

    with FaceDatabase("faces.db") as db:
        db.enroll("Barack_Obama", "fr_utils/cast/people/Barack_Obama/Barack_Obama_0001.jpg")
        db.enroll_tree("fr_utils/cast/people")                # <root>/<name>/*.jpg
        db.verify("photo.jpg", "Barack_Obama")           # (distance, is_match)
        db.identify("photo.jpg")                         # (name or None, distance)

How a photo is compared. Each photo is encoded as ``fr_utils.img_to_encoding``
does (MTCNN, the largest face, 32-pixel margin, 160x160), giving a (512,) unit
vector. A person may have several embeddings (several photos); the **distance
to a person is the smallest distance to any of their embeddings**. Two metrics:

* ``"euclidean"`` (default): the L2 distance ``||a - b||``, in [0, 2] for unit vectors;
* ``"cosine"``: ``1 - cos(a, b)``, in [0, 2].

For unit vectors ``||a - b||^2 = 2 - 2 cos(a, b)``, so ``cosine = euclidean^2 / 2``:
both rank people identically, and a euclidean threshold ``t`` is the cosine
threshold ``t^2 / 2`` (same decisions). A claim matches when
``distance <= threshold`` (the convention of ``fr_utils.evaluate``, where the
threshold was chosen). The default threshold is the one chosen for the
bundled model on LFW View 1 (``pairsDevTrain.txt``) and recorded in its
manifest (key ``verification``), converted to the metric in use.

Safety. The database records the model it was built with (name, weights
sha256, embedding size) and refuses to answer with another. Writes are
transactions, committed image batch by image batch, so a process killed during
a bulk enrol leaves everything committed before it readable. The file is in
WAL mode with a busy timeout, so other processes may read while one writes. A
file that is not a face database (another program's SQLite file, an image, a
damaged file) raises :class:`FaceDatabaseError` naming it and is never written to.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from fr_utils.errors import (
    EmptyDatabaseError,
    FaceDatabaseError,
    FaceImageError,
    ModelMismatchError,
    SkippedImagesWarning,
    UnknownPersonError,
)
from fr_utils.face_store import connect, sqlite_error, utc_now
from fr_utils.images import IMAGE_SUFFIXES, is_image_file
from fr_utils.matching import check_metric, check_threshold, default_threshold, distances_to
from fr_utils.weights import is_pretrained, model_identity

__all__ = ["FaceDatabase", "check_name", "image_files"]

MAX_NAME_LENGTH = 200


# --------------------------------------------------------------------------- the database


def check_name(name: str) -> str:
    """A person's name: a non-empty string of at most 200 characters, without control
    characters or surrounding spaces. Names are case-sensitive. ValueError otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ValueError("a person's name must not be empty")
    if name != name.strip():
        raise ValueError(f"a person's name must not start or end with spaces: {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a person's name must have at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"a person's name must not contain control characters: {name!r}")
    return name


def _image_digest(image) -> str | None:
    """sha256 of a file's bytes, of bytes, or of an array's pixels; None when unreadable."""
    try:
        if isinstance(image, (str, os.PathLike)):
            return hashlib.sha256(Path(image).read_bytes()).hexdigest()
        if isinstance(image, (bytes, bytearray, memoryview)):
            return hashlib.sha256(bytes(image)).hexdigest()
        if isinstance(image, np.ndarray):
            arr = np.ascontiguousarray(image)
            return hashlib.sha256(repr((arr.shape, arr.dtype.str)).encode() + arr.tobytes()).hexdigest()
    except (OSError, ValueError):
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
        threshold: a claim matches when ``distance <= threshold``, in (0, 2). ``None``
            uses the bundled model's threshold from its manifest (converted to ``metric``).
        create: if False, a missing file raises :class:`FaceDatabaseError` instead
            of being created.

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
    ):
        self.metric = metric
        self.threshold = threshold
        self.path = None if path is None else Path(path)
        self._model = model
        self._identity: dict | None = None
        self._checked = False
        self._cache = None
        self._conn: sqlite3.Connection | None = None
        self._conn = connect(self.path, create)

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
        return default_threshold(self.metric)

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
        """Run ``statements(conn)`` in one transaction (all or nothing)."""
        conn = self._db()
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
        return isinstance(name, str) and bool(self._query("SELECT 1 FROM people WHERE name = ?", (name,)))

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
        return np.stack([self._vector(r[0], size) for r in rows])

    def _person_id(self, name: str) -> int:
        rows = self._query("SELECT id FROM people WHERE name = ?", (name,))
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
        """Delete a person and all their embeddings; returns how many embeddings went."""
        pid = self._person_id(name)
        count = int(self._query("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (pid,))[0][0])
        self._write(f"remove {name!r}", lambda c: c.execute("DELETE FROM people WHERE id = ?", (pid,)))
        return count

    def rename(self, old: str, new: str) -> None:
        """Rename a person. ValueError if ``new`` is already enrolled."""
        check_name(new)
        pid = self._person_id(old)
        if new in self and new != old:
            raise ValueError(f"cannot rename {old!r} to {new!r}: {new!r} is already enrolled")
        self._write(f"rename {old!r}", lambda c: c.execute("UPDATE people SET name = ? WHERE id = ?", (new, pid)))

    # ----------------------------------------------------------------- enrolling

    def add_embeddings(
        self,
        name: str,
        embeddings: np.ndarray,
        sources: Sequence[str | None] | None = None,
        digests: Sequence[str | None] | None = None,
    ) -> int:
        """Store already-computed embeddings for ``name`` (created if new), in one transaction.

        Args:
            embeddings: (k, d) or (d,) finite floats from this database's model.
            sources: k file names (or None) recorded with each embedding.
            digests: k image sha256 values (or None) used to skip re-enrolled images.
        Returns:
            k, the number of embeddings added.
        """
        check_name(name)
        ident = self._check_model()
        e = np.asarray(embeddings, dtype=np.float32)
        if e.ndim == 1:
            e = e[None]
        size = int(ident["embedding_size"])
        if e.ndim != 2 or e.shape[1] != size or len(e) == 0:
            raise ValueError(f"embeddings must have shape (k, {size}) with k >= 1, got {np.shape(embeddings)}")
        if not np.all(np.isfinite(e)):
            raise ValueError("embeddings must be finite (no NaN or infinity)")
        sources = list(sources) if sources is not None else [None] * len(e)
        digests = list(digests) if digests is not None else [None] * len(e)
        if len(sources) != len(e) or len(digests) != len(e):
            raise ValueError(f"{len(e)} embeddings but {len(sources)} sources and {len(digests)} digests")

        def insert(conn: sqlite3.Connection) -> None:
            now = utc_now()
            conn.execute("INSERT OR IGNORE INTO people (name, enrolled) VALUES (?, ?)", (name, now))
            pid = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            conn.executemany(
                "INSERT INTO embeddings (person_id, vector, source, image_sha256, added) VALUES (?, ?, ?, ?, ?)",
                [(pid, v.astype("<f4").tobytes(), s, d, now) for v, s, d in zip(e, sources, digests)],
            )

        self._write(f"enrol {name!r}", insert)
        return len(e)

    def _stored_digests(self, name: str) -> set[str]:
        rows = self._query(
            "SELECT e.image_sha256 FROM embeddings e JOIN people p ON p.id = e.person_id "
            "WHERE p.name = ? AND e.image_sha256 IS NOT NULL", (name,)
        )
        return {r[0] for r in rows}

    def enroll(self, name: str, images, *, batch_size: int = 16, progress: bool | None = False) -> int:
        """Add photos of one person (created if new; more photos add more embeddings).

        Args:
            name: the person's name (see :func:`check_name`).
            images: one image (a path, bytes, RGB array or Pillow image), a list of
                them, or a folder of that person's photos (its image files, sorted).
                Each photo's largest face is encoded (``img_to_encoding``'s pipeline).
            batch_size: images encoded and committed together: a process killed
                during a bulk enrol keeps every batch committed before.
            progress: show a progress bar (True), or not.
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
        """
        check_name(name)
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
                    added += self.add_embeddings(
                        name, encoded.embeddings,
                        sources=[_source_name(batch[i][0]) for i in encoded.indices],
                        digests=[batch[i][1] for i in encoded.indices],
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

    def enroll_tree(self, root: str | os.PathLike, *, batch_size: int = 16, progress: bool | None = False) -> dict[str, int]:
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
                added[folder.name] = self.enroll(folder.name, folder, batch_size=batch_size, progress=progress)
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
        return e.reshape(-1)

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
        # Rank everyone with one float32 matrix-vector product (memory-bound: float32
        # halves the bytes read), then recompute the distances returned in float64.
        dots = (matrix @ e.astype(np.float32)).astype(np.float64)
        if self.metric == "euclidean":
            rough = np.sqrt(np.maximum(squared + e @ e - 2.0 * dots, 0.0))
        else:
            rough = 1.0 - dots / np.maximum(np.sqrt(squared) * np.linalg.norm(e), 1e-12)
        per_person = np.minimum.reduceat(rough, starts[:-1])
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
        """The embedding (d,) of the largest face of a photo, with this database's model
        (``fr_utils.img_to_encoding``). NoFaceError / FaceImageError name the file."""
        from fr_utils.encoding import img_to_encoding

        self._check_model()
        return img_to_encoding(image, self.model)[0]

    def verify(self, image, name: str) -> tuple[float, bool]:
        """Is the largest face of ``image`` the person ``name``? (1:1, the door with a badge)

        Args:
            image: a path, bytes, RGB array (H, W, 3) or Pillow image of a photo.
        Returns:
            ``(distance, is_match)``: the distance to ``name`` (see :meth:`distance`)
            and ``distance <= threshold``.
        Raises:
            UnknownPersonError: ``name`` is not enrolled (checked before encoding).
            NoFaceError, FaceImageError: no face in the photo, or unreadable.
        """
        self._person_id(name)
        d = self.distance(self.encode(image), name)
        return d, bool(d <= self.threshold)

    def identify(self, image) -> tuple[str | None, float]:
        """Who is the largest face of ``image``? (1:K, the door without a badge)

        Returns:
            ``(name, distance)`` of the nearest enrolled person, or ``(None, distance)``
            when even the nearest is farther than the threshold.
        Raises:
            EmptyDatabaseError: no one is enrolled (checked before encoding).
            NoFaceError, FaceImageError: no face in the photo, or unreadable.
        """
        if len(self) == 0:
            raise EmptyDatabaseError(f"{self.name}: no one is enrolled yet (enrol someone first)")
        name, d = self.nearest(self.encode(image))[0]
        return (name if d <= self.threshold else None), d

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
            faces.append(dict(face, name=nearest if d <= threshold else None, distance=d, nearest=nearest))
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


def _source_name(image) -> str | None:
    return str(image) if isinstance(image, (str, os.PathLike)) else None
