"""The SQLite file under a real bot process (`python -m bot run`): killed with SIGKILL during a
fast stream of reports several times, it stays whole (integrity and foreign keys checked) and
the bot starts on it and answers; a backup taken while the bot writes (`python -m bot backup`)
restores (`python -m bot restore`) into a whole database holding at least what was committed
before the backup began, and the bot runs on it."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.backup import check_sqlite
from bot.cli import main
from bot.harness import free_port
from bot.sandbox import Sandbox
from tests.e2e.processes import BotProcess, until
from tests.e2e.test_processes import (
    GROUP,
    REPORTERS,
    acks_by_report,
    bot_env,
    prepare,
    reports_in_db,
)

SEED = 20261124
KILLS = 3


def checked(path: Path) -> None:
    """SQLite's integrity check passes and no foreign key points nowhere."""
    check_sqlite(path)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


async def stream(sb: Sandbox, rng: random.Random, n: int, sent: list[int], tag: str) -> None:
    for i in range(n):
        message = sb.send_photo(rng.choice(REPORTERS), chat_id=GROUP, caption=f"#问题 {tag}{i}")
        sent.append(message["message_id"])
        await asyncio.sleep(rng.uniform(0.0, 0.05))


def cli(monkeypatch: pytest.MonkeyPatch, db_url: str, *argv: str) -> int:
    with monkeypatch.context() as m:
        m.setenv("DATABASE_URL", db_url)
        return main(list(argv))


async def test_killed_during_heavy_writes_then_backed_up_while_writing(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    rng = random.Random(SEED)
    db_file = Path(str(make_url(sqlite_url).database))
    sb = await prepare(sqlite_url)
    env = bot_env(sb, sqlite_url, tmp_path, free_port())
    bot = BotProcess("bot", tmp_path, env)
    sent: list[int] = []
    backup, restored = tmp_path / "backup.db", tmp_path / "restored" / "greengrid.db"
    restored.parent.mkdir()
    try:
        # Killed at a random moment of a fast stream of reports, several times.
        for kill in range(KILLS):
            await bot.start()
            await bot.ready()
            writing = asyncio.create_task(stream(sb, rng, 30, sent, f"k{kill}-"))
            handled = len(acks_by_report(sb))
            await until(lambda: len(acks_by_report(sb)) > handled + 2, timeout=10)  # noqa: B023
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await bot.kill()
            await writing
            checked(db_file)
        await bot.start()
        await bot.ready()
        answered = await until(lambda: set(acks_by_report(sb)) >= set(sent), timeout=30)
        assert answered, bot.logs()
        # A backup while the bot writes: what was committed before it began is in it.
        writing = asyncio.create_task(stream(sb, rng, 30, sent, "b-"))
        await until(lambda: len(acks_by_report(sb)) > len(sent) - 25, timeout=10)
        before = await reports_in_db(sqlite_url)
        assert await asyncio.to_thread(cli, monkeypatch, sqlite_url, "backup", str(backup)) == 0
        await writing
        assert await until(lambda: set(acks_by_report(sb)) >= set(sent), timeout=30), bot.logs()
        assert await bot.stop() == 0
        after = await reports_in_db(sqlite_url)
        checked(db_file)
        assert after == {f"m:{m}": 1 for m in sent}  # every report once, none lost to a kill

        restored_url = f"sqlite+aiosqlite:///{restored}"
        assert cli(monkeypatch, restored_url, "restore", str(backup)) == 0
        checked(restored)
        in_backup = await reports_in_db(restored_url)
        assert before.items() <= in_backup.items() <= after.items()
        assert len(in_backup) < len(after)  # the backup was taken mid-stream

        # The bot runs on the restored file and answers.
        on_restored = BotProcess(
            "restored", tmp_path, bot_env(sb, restored_url, tmp_path, free_port())
        )
        bot = on_restored
        await bot.start()
        await bot.ready()
        new = sb.send_photo(REPORTERS[0], chat_id=GROUP, caption="#问题 恢复后第一处")
        assert await until(lambda: new["message_id"] in acks_by_report(sb), timeout=20), bot.logs()
        assert await bot.stop() == 0
        checked(restored)
    finally:
        if bot.running:
            await bot.kill()
        await sb.stop()


def test_backup_and_restore_say_what_is_wrong_in_one_line(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(monkeypatch, sqlite_url, "migrate") == 0
    good = tmp_path / "good.db"
    assert cli(monkeypatch, sqlite_url, "backup", str(good)) == 0
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database")
    capsys.readouterr()
    cases = [
        (sqlite_url, "backup", str(tmp_path / "nope" / "x.db"), "the folder"),
        (sqlite_url, "backup", str(good), "exists: choose another name, or add --force"),
        (sqlite_url, "backup", str(tmp_path), "is a folder"),
        (f"sqlite:///{tmp_path}/missing.db", "backup", str(tmp_path / "m.db"), "no database at"),
        (f"sqlite:///{tmp_path}/new.db", "restore", str(junk), "is not a SQLite database"),
        (f"sqlite:///{tmp_path}/new.db", "restore", str(tmp_path / "none.db"), "no backup at"),
        (sqlite_url, "restore", str(good), "stop the bot, then add --force"),
    ]
    for url, command, path, says in cases:
        assert cli(monkeypatch, url, command, path) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"{command}: ") and says in err[0], err
    assert cli(monkeypatch, sqlite_url, "restore", "--force", str(good)) == 0
    checked(Path(str(make_url(sqlite_url).database)))
