"""The SQLite file behind :class:`fr_utils.database.FaceDatabase`: opening, checking, creating.

A face database is an SQLite file whose ``PRAGMA application_id`` is
:data:`APPLICATION_ID`, with three tables: ``meta`` (key/value: schema version,
creation time, the model's name, weights sha256 and embedding size),
``people`` (id, unique name, enrolment time) and ``embeddings`` (person,
float32 little-endian BLOB, source file, image sha256, time). It is in WAL
mode, so readers in other processes never block and are never blocked.

:func:`connect` refuses, without writing to it, any file that is not a face
database: not SQLite at all (a photo), another application's SQLite file (even
one without tables), a damaged file, or one from a newer schema. Only a new file
(missing, or 0 bytes) is initialised. A unique index on (person, image sha256)
makes enrolling the same photo twice impossible, even from two processes at once.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from fr_utils.errors import FaceDatabaseError

#: Version of the tables below; a file with a newer version is refused.
SCHEMA_VERSION = 1
#: SQLite's ``PRAGMA application_id`` of a face database ("FDOR").
APPLICATION_ID = int.from_bytes(b"FDOR", "big")
#: Seconds a writer waits for another process's write to finish.
BUSY_TIMEOUT_S = 30.0
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    enrolled TEXT NOT NULL
);
CREATE TABLE embeddings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    source TEXT,
    image_sha256 TEXT,
    added TEXT NOT NULL
);
CREATE UNIQUE INDEX one_embedding_per_image ON embeddings(person_id, image_sha256);
"""
#: Made by every write on files created before it was part of the schema.
UNIQUE_IMAGES = "CREATE UNIQUE INDEX IF NOT EXISTS one_embedding_per_image ON embeddings(person_id, image_sha256)"


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second: ``2026-11-25T00:05:13Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def connect(path: Path | None, create: bool, read_only: bool = False) -> tuple[sqlite3.Connection, bool]:
    """``(connection, read_only)``: an autocommit connection to the face database at ``path``
    (in memory if None), and whether it was opened read-only.

    Only a new file is initialised: one that does not exist or is empty (0 bytes),
    and only when ``create``. Anything else must already be a face database of
    this schema or older; an SQLite file of another program, even one without
    tables, is refused and left untouched. The file is opened read-only when
    ``read_only``, or when it or its folder is not writable by this user; if SQLite
    cannot even open it read-only (a WAL file whose folder is read-only), it is
    opened as immutable (the main file alone). Every connection asks for
    ``secure_delete``, so deleted rows are overwritten with zeros.

    Raises:
        FaceDatabaseError: naming the file: a folder, missing (``create=False``),
            empty (``create=False``), not SQLite, another application's, damaged,
            newer, or not creatable.
    """
    if path is None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        _initialise(conn, path)
        return conn, False
    if path.is_dir():
        raise FaceDatabaseError(f"{path}: is a directory, not a database file")
    exists = path.exists()
    if not exists and not create:
        raise FaceDatabaseError(f"{path}: no such database file")
    if exists and not path.is_file():
        raise FaceDatabaseError(f"{path}: not a regular file (a device, FIFO or socket), not a database file")
    new = not exists or path.stat().st_size == 0
    if new and not create:
        raise FaceDatabaseError(
            f"{path}: the file is empty (0 bytes), not a face database yet; enrolling someone "
            "(facedoor enroll) initialises it"
        )
    if exists:
        _check_header(path)
    if new:
        _check_creatable(path)
        read_only = False
    elif not read_only:
        folder = path.parent if str(path.parent) else Path(".")
        read_only = not (os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK))
    if read_only:
        conn = _open_read_only(path)
    else:
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as err:
            raise FaceDatabaseError(f"{path}: cannot open the database ({err})") from err
    try:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = ON")
        if new:
            _initialise(conn, path)
        else:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            _check_ours(conn, tables, app_id, path)
    except sqlite3.Error as err:
        conn.close()
        raise sqlite_error(str(path), err, "open") from err
    except FaceDatabaseError:
        conn.close()
        raise
    return conn, read_only


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: ``mode=ro``, else ``immutable=1`` when SQLite cannot set up
    WAL's shared memory (a read-only folder without the ``-shm`` file)."""
    uri = Path(os.path.abspath(path)).as_uri()
    last: sqlite3.Error | None = None
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(f"{uri}?{flags}", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as err:
            last = err
            try:
                conn.close()
            except (NameError, UnboundLocalError, sqlite3.Error):
                pass
            low = str(err).lower()
            if not ("readonly" in low or "read-only" in low or "unable to open" in low):
                break
    assert last is not None
    raise sqlite_error(str(path), last, "open the file read-only")


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """None when ``PRAGMA quick_check`` finds the file sound, else its first complaint."""
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.Error as err:
        return str(err)
    result = "; ".join(str(r[0]) for r in rows)
    return None if result == "ok" else result


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database file and empty it (``wal_checkpoint(TRUNCATE)``).
    False when a reader in another process kept part of it (it is done at a later write or close)."""
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0


def _check_header(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError as err:
        raise FaceDatabaseError(f"{path}: cannot read the database file ({err})") from err
    if head and head != _SQLITE_HEADER:
        raise FaceDatabaseError(
            f"{path}: not a face database (not an SQLite file); it was left untouched. "
            "Choose another file with --db / FaceDatabase(path)."
        )


def _check_creatable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise FaceDatabaseError(f"cannot create {path}: {ancestor} is a file, not a folder")
            break
    if not parent.is_dir():
        raise FaceDatabaseError(f"cannot create {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FaceDatabaseError(f"cannot create {path}: no permission to write in {parent}")


def _initialise(conn: sqlite3.Connection, path: Path | None) -> None:
    """Create the tables in a new, empty file (unless another process just did), then switch
    it to WAL. The tables and the application id are committed together, before WAL mode,
    so another process never sees a half-made file: only an empty one or a face database."""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables:  # created meanwhile by another process: check it instead
            conn.execute("ROLLBACK")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            _check_ours(conn, tables, app_id, path)
        else:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("application", "facedoor face database"), ("schema_version", str(SCHEMA_VERSION)),
                 ("created", utc_now())],
            )
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if path is not None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise FaceDatabaseError(f"{path}: cannot switch the database to WAL mode (got {mode})")


def _check_ours(conn: sqlite3.Connection, tables: set[str], app_id: int, path: Path) -> None:
    if app_id != APPLICATION_ID or not {"meta", "people", "embeddings"} <= tables:
        raise FaceDatabaseError(
            f"{path}: an SQLite database of another application (tables: "
            f"{', '.join(sorted(tables)) or 'none'}), not a face database; it was left untouched"
        )
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise FaceDatabaseError(
            f"{path}: made by a newer fr_utils (schema {version}, this one reads {SCHEMA_VERSION}); "
            "upgrade fr_utils"
        )


def sqlite_error(name: str, err: sqlite3.Error, doing: str) -> FaceDatabaseError:
    """An SQLite error as a FaceDatabaseError naming the file ``name`` and what went wrong."""
    text = str(err)
    low = text.lower()
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        why = "the file is damaged (corrupt or truncated); it was left untouched"
    elif "readonly" in low or "read-only" in low:
        why = "the file or its folder is read-only"
    elif "locked" in low or "busy" in low:
        why = f"another process kept the database locked for more than {BUSY_TIMEOUT_S:.0f} s"
    elif "unable to open" in low:
        why = "cannot open the file (check the folder exists and is writable)"
    elif "full" in low:
        why = "the disk is full"
    else:
        why = "database error"
    return FaceDatabaseError(f"{name}: cannot {doing}: {why} ({text})")
