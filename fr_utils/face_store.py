"""The SQLite file behind :class:`fr_utils.database.FaceDatabase`: opening, checking, creating.

A face database is an SQLite file whose ``PRAGMA application_id`` is
:data:`APPLICATION_ID`, with three tables: ``meta`` (key/value: schema version,
creation time, the model's name, weights sha256 and embedding size),
``people`` (id, unique name, enrolment time) and ``embeddings`` (person,
float32 little-endian BLOB, source file, image sha256, time). It is in WAL
mode, so readers in other processes never block and are never blocked.

:func:`connect` refuses, without writing to it, any file that is not a face
database: not SQLite at all (a photo), another application's SQLite file, a
damaged file, or one from a newer schema.
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
CREATE INDEX embeddings_by_person ON embeddings(person_id, image_sha256);
"""


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second: ``2026-11-25T00:05:13Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def connect(path: Path | None, create: bool) -> sqlite3.Connection:
    """An autocommit connection to the face database at ``path`` (in memory if None).

    A missing file is created with the tables when ``create`` (its folder must
    exist and be writable); an empty file (0 bytes, or SQLite without tables) is
    initialised; anything else must be a face database of this schema or older.

    Raises:
        FaceDatabaseError: naming the file: a folder, missing (``create=False``),
            not SQLite, another application's, damaged, newer, or not creatable.
    """
    if path is None:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        _initialise(conn, path)
        return conn
    if path.is_dir():
        raise FaceDatabaseError(f"{path}: is a directory, not a database file")
    exists = path.exists()
    if not exists and not create:
        raise FaceDatabaseError(f"{path}: no such database file")
    if exists:
        _check_header(path)
    else:
        _check_creatable(path)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as err:
        raise FaceDatabaseError(f"{path}: cannot open the database ({err})") from err
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if not tables and app_id == 0:
            _initialise(conn, path)
        else:
            _check_ours(conn, tables, app_id, path)
    except sqlite3.Error as err:
        conn.close()
        raise sqlite_error(str(path), err, "open") from err
    except FaceDatabaseError:
        conn.close()
        raise
    return conn


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
    """Create the tables in an empty database (unless another process just did)."""
    if path is not None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise FaceDatabaseError(f"{path}: cannot switch the database to WAL mode (got {mode})")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables:  # created meanwhile by another process: check it instead
            conn.execute("ROLLBACK")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            _check_ours(conn, tables, app_id, path)
            return
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
