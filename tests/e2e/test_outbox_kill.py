"""A real bot process (`python -m bot run`) against the stand-in hosted here, with Telegram's
real limits, SIGKILLed in the middle of the morning's fan-out and started again.

What is guaranteed, and asserted exactly: every row is delivered at least once; a row is
delivered twice only if it was in flight (claimed and not yet marked sent) when the process
died; what was marked sent is never sent again. To make the duplicate case certain rather than
lucky, the stand-in kills the process the moment it has accepted one chosen message and before
it answers: the restarted process must send that one again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.db import Database
from bot.harness import TOKEN
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox, SentMessage
from bot.sending.outbox_sender import MAX_IN_FLIGHT
from bot.services.org import import_org, parse_org_file
from bot.services.roles import Role
from models.base import utcnow
from tests.e2e.conftest import ADMIN, EXAMPLES
from tests.e2e.reminder_world import admin, person, problem, rows

# Rows go out in order, 30 a second at most. When the victim's message is accepted, fewer than
# 60 rows can have been marked (it goes out within the second second) and at most 40 more
# claimed: the last 20 cannot have been touched.
LIAISONS = list(range(30001, 30121))
VICTIM = LIAISONS[45]
LEASE_S = 2


@dataclass
class Scene:
    sb: KillingSandbox
    db: Database
    clock: Callable[[], datetime] = field(default=utcnow)


class KillingSandbox(Sandbox):
    """Kills ``pid`` as it records the bot's message to ``victim``: the message is delivered,
    and the answer never reaches the process."""

    victim: int | None = None
    pid: int | None = None

    def record_sent(self, message: SentMessage, *, label: str | None = None) -> None:
        super().record_sent(message, label=label)
        if message.chat_id == self.victim and self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
            self.pid = None


@pytest.fixture
async def scene(sqlite_url: str) -> AsyncIterator[Scene]:
    sb = KillingSandbox(TOKEN, limits=TelegramLimits())  # Telegram's real limits
    await sb.start()
    db = Database.connect(sqlite_url)
    try:
        yield Scene(sb, db)
    finally:
        await db.dispose()
        await sb.stop()


class Bot:
    """`python -m bot run` as a child process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                env=self.env,
                cwd=self.log.parent,  # away from any .env a developer keeps in the checkout
                stdout=out,
                stderr=out,
            )

    async def signal(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), 20)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def test_killed_mid_fan_out_and_restarted_delivers_every_row(
    scene: Scene, sqlite_url: str, tmp_path: Path
) -> None:
    async with scene.db.begin() as session:
        await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
    scene.sb.add_user(ADMIN, "王主任")
    await admin(scene)
    for uid in LIAISONS:
        await person(scene, uid, f"联络员{uid}", Role.liaison, "NH-DQ")
    await problem(scene, utcnow() - timedelta(days=2))
    rules = tmp_path / "rules.yaml"
    rules.write_text('schedules: {quiet_start: "00:00", quiet_end: "00:00"}\n')  # any hour
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")},
        "BOT_TOKEN": TOKEN,
        "BOT_API_BASE_URL": scene.sb.root_url,
        "DATABASE_URL": sqlite_url,
        "ADMIN_IDS": str(ADMIN),
        "RULES_FILE": str(rules),
        "MEDIA_DIR": str(tmp_path / "media"),
        "OUTBOX_LEASE_SECONDS": str(LEASE_S),
    }
    log = tmp_path / "bot.log"

    first = Bot(env, log)
    await first.start()
    assert first.proc is not None
    scene.sb.victim, scene.sb.pid = VICTIM, first.proc.pid
    # The reminders are written on start (catching up) or by /remind, whichever comes first.
    scene.sb.send_text(ADMIN, "/remind")
    code = await asyncio.wait_for(first.proc.wait(), 60)
    assert code == -signal.SIGKILL, _tail(log)
    at_kill = await rows(scene)
    in_flight = {r.chat_id for r in at_kill if r.status == "pending" and r.claimed_by}
    marked = {r.chat_id for r in at_kill if r.status == "sent"}
    untouched = {r.chat_id for r in at_kill if r.status == "pending" and not r.claimed_by}
    assert VICTIM in in_flight and marked and untouched  # killed in the middle
    assert len(in_flight) <= MAX_IN_FLIGHT

    second = Bot(env, log)
    await second.start()
    try:
        deadline = time.monotonic() + 40
        while any(r.status != "sent" for r in await rows(scene)):
            assert time.monotonic() < deadline, _tail(log)
            await asyncio.sleep(0.1)
    finally:
        assert await second.signal(signal.SIGTERM) == 0

    got = Counter(m.chat_id for m in scene.sb.sent() if "今日提醒" in m.content)
    assert set(got) == set(LIAISONS)  # every row delivered
    duplicates = {chat for chat, n in got.items() if n > 1}
    assert duplicates <= in_flight  # and twice only if in flight at the kill
    assert VICTIM in duplicates and got[VICTIM] == 2
    assert all(got[chat] == 1 for chat in marked | untouched)
    assert len(at_kill) == len(await rows(scene)) == len(LIAISONS)  # the restart wrote nothing new
    # The restarted process waited one overall window before sending: the limits held across
    # the two processes too.
    assert scene.sb.count_429 == 0
