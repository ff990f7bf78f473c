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
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.db import Database
from bot.harness import TOKEN, free_port
from bot.limits import TelegramLimits
from bot.sending.outbox_sender import MAX_IN_FLIGHT
from bot.services.org import import_org, parse_org_file
from bot.services.roles import Role
from models.base import utcnow
from tests.e2e.conftest import ADMIN, EXAMPLES
from tests.e2e.processes import BotProcess, KillingSandbox
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
        "HTTP_PORT": str(free_port()),
    }
    bot = BotProcess("bot", tmp_path, env)
    await bot.start()
    scene.sb.arm(bot.pid, victim=VICTIM)
    # The reminders are written on start (catching up) or by /remind, whichever comes first.
    scene.sb.send_text(ADMIN, "/remind")
    await bot.killed(timeout=60)
    at_kill = await rows(scene)
    in_flight = {r.chat_id for r in at_kill if r.status == "pending" and r.claimed_by}
    marked = {r.chat_id for r in at_kill if r.status == "sent"}
    untouched = {r.chat_id for r in at_kill if r.status == "pending" and not r.claimed_by}
    assert VICTIM in in_flight and marked and untouched  # killed in the middle
    assert len(in_flight) <= MAX_IN_FLIGHT

    await bot.start()
    try:
        deadline = time.monotonic() + 40
        while any(r.status != "sent" for r in await rows(scene)):
            assert time.monotonic() < deadline, bot.logs()
            await asyncio.sleep(0.1)
    finally:
        assert await bot.stop() == 0

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
