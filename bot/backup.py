"""`python -m bot backup FILE` and `python -m bot restore FILE`.

SQLite: the backup goes through SQLite's online backup API, so it is one consistent snapshot
(the write-ahead log included) even while the bot writes; it is checked (``PRAGMA
integrity_check``) before it is put in place. A restore copies a checked backup into the
database file the same way; the bot must be stopped for it.

PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore --clean --if-exists``, when they are on
PATH (the PostgreSQL client tools).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(Exception):
    """A backup or restore cannot be done: one line saying why and what to do."""


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL; None for another database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("DATABASE_URL names an in-memory SQLite database: nothing to back up")
    return Path(url.database)


def _read_only(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def check_sqlite(path: Path) -> None:
    """BackupError unless ``path`` is a whole greengrid SQLite database."""
    try:
        with closing(sqlite3.connect(_read_only(path), uri=True)) as db:
            result = [row[0] for row in db.execute("PRAGMA integrity_check")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a SQLite database ({exc})") from None
    if result != ["ok"]:
        raise BackupError(f"{path} fails SQLite's integrity check: {'; '.join(result[:3])}")
    if "alembic_version" not in tables:
        raise BackupError(f"{path} is not a greengrid database (it has no alembic_version)")


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup from ``source`` into ``target`` (replaced whole)."""
    with (
        closing(sqlite3.connect(_read_only(source), uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.execute("PRAGMA busy_timeout=10000")  # the bot may hold the write lock a moment
        src.backup(dst)
        # One self-contained file (the bot turns write-ahead logging on again when it opens it).
        dst.execute("PRAGMA journal_mode=DELETE")


def _writable_target(target: Path, *, force: bool) -> None:
    if target.is_dir():
        raise BackupError(f"{target} is a folder: give a file name, e.g. {target}/greengrid.db")
    if not target.parent.is_dir():
        raise BackupError(f"cannot write {target}: the folder {target.parent} does not exist")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: choose another name, or add --force to replace it")


def _pg(database_url: str) -> tuple[str, str]:
    """The URL as pg_dump and pg_restore read it, and as it may be shown (no password)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False), url.render_as_string(hide_password=True)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools (the same major "
            f"version as the server), or run {name} yourself with the database's address"
        )
    return found


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = " ".join(done.stderr.split()) or f"exit code {done.returncode}"
        raise BackupError(f"{what} failed: {detail}")


def backup(database_url: str, target: Path, *, force: bool = False) -> str:
    """Back the database up into ``target``; a line saying what was written."""
    _writable_target(target, force=force)
    source = sqlite_path(database_url)
    if source is None:
        url, shown = _pg(database_url)
        partial = target.with_name(target.name + ".partial")
        _run([_pg_tool("pg_dump"), "--format=custom", f"--file={partial}", url], "pg_dump")
        os.replace(partial, target)
        return f"{shown} backed up to {target} ({target.stat().st_size} bytes, pg_dump format)"
    if not source.is_file():
        raise BackupError(f"no database at {source}: check DATABASE_URL")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        _copy_sqlite(source, partial)
        check_sqlite(partial)
        os.replace(partial, target)  # never a half-written backup under the chosen name
    finally:
        partial.unlink(missing_ok=True)
    return f"{source} backed up to {target} ({target.stat().st_size} bytes, integrity ok)"


def restore(database_url: str, source: Path, *, force: bool = False) -> str:
    """Replace the database with the backup ``source``; a line saying what was done."""
    if not source.is_file():
        raise BackupError(f"no backup at {source}")
    target = sqlite_path(database_url)
    if target is None:
        url, shown = _pg(database_url)
        _run(
            [
                _pg_tool("pg_restore"),
                *("--clean", "--if-exists", "--no-owner", f"--dbname={url}", str(source)),
            ],
            "pg_restore",
        )
        return f"{shown} restored from {source}"
    check_sqlite(source)
    if target.exists() and not force:
        raise BackupError(
            f"{target} exists: stop the bot, then add --force to replace it with {source}"
        )
    if not target.parent.is_dir():
        raise BackupError(f"cannot write {target}: the folder {target.parent} does not exist")
    _copy_sqlite(source, target)
    check_sqlite(target)
    return f"{target} restored from {source} (integrity ok)"
