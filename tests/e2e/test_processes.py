"""Real bot processes (`python -m bot run`) against a stand-in hosted by the test.

1. A stream of photo reports into a bound group while the bot is killed with SIGKILL at random
   moments (seeded: a failure replays with the same seed) and restarted; at the end every report
   is in the database exactly once and every reporter got an acknowledgement. What is
   guaranteed for the acknowledgement is at least once: a process killed after sending it but
   before its update was marked done sends it again when the update runs again.
2. Two processes on one PostgreSQL in webhook mode behind one address (a round-robin proxy):
   each update is processed once, by one of them, and one group's reports are answered in order
   although consecutive ones reached different processes.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

import models
from bot.db import Database
from bot.harness import TOKEN, free_port
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox
from bot.sandbox.webhook import SECRET_HEADER
from bot.services import chats, people
from bot.services.org import import_org, parse_org_file
from models.base import utcnow
from tests.conftest import _empty_tables
from tests.e2e import processes
from tests.e2e.processes import SETTING_NAMES, BotProcess, until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEED = 0.05
SEED = 20261123
ADMIN = 1001
GROUP = -100700
REPORTERS = (5001, 5002, 5003, 5004)
SECRET = "processes-test-secret"
ACK = "已登记为问题"


def bot_env(sb: Sandbox, db_url: str, workdir: Path, port: int, **extra: str) -> dict[str, str]:
    return processes.bot_env(sb, db_url, workdir, port, admin=ADMIN, speed=SPEED, **extra)


async def prepare(db_url: str) -> Sandbox:
    """The organisation imported and the work group bound (as an admin would have done
    earlier); the stand-in with the reporters in the group, the bot its admin."""
    db = Database.connect(db_url)
    try:
        async with db.begin() as session:
            await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
            admin = await people.ensure_person(session, ADMIN, "王主任", None)
            area = await session.scalar(select(models.Area.id).where(models.Area.code == "NH-DQ"))
            assert area is not None
            await chats.bind_group(
                session, GROUP, "东桥镇工作群", area, by_person_id=admin.id, now=utcnow()
            )
    finally:
        await db.dispose()
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(SPEED))
    await sb.start()
    sb.add_user(ADMIN, "王主任")
    for uid in REPORTERS:
        sb.add_user(uid, f"网格员{uid}")
    sb.add_group(
        GROUP, "东桥镇工作群", members=[ADMIN, *REPORTERS], admins=[ADMIN], bot_is_admin=True
    )
    return sb


async def report_stream(sb: Sandbox, rng: random.Random, n: int, sent: list[int]) -> None:
    for i in range(n):
        reporter = rng.choice(REPORTERS)
        message = sb.send_photo(reporter, chat_id=GROUP, caption=f"#问题 第{i + 1}处河边垃圾")
        sent.append(message["message_id"])
        await asyncio.sleep(rng.uniform(0.1, 0.5))


def acks_by_report(sb: Sandbox) -> dict[int, int]:
    counts: dict[int, int] = {}
    for m in sb.sent(GROUP):
        if ACK in m.content and m.reply_to_message_id is not None:
            counts[m.reply_to_message_id] = counts.get(m.reply_to_message_id, 0) + 1
    return counts


async def reports_in_db(db_url: str) -> dict[str, int]:
    """source_key → problems made from it."""
    db = Database.connect(db_url)
    try:
        async with db.begin() as session:
            rows = await session.execute(
                select(models.Problem.source_key, func.count()).group_by(models.Problem.source_key)
            )
            return {str(key): n for key, n in rows}
    finally:
        await db.dispose()


async def inbox_rows(db_url: str) -> list[tuple[int, str, str | None]]:
    db = Database.connect(db_url)
    try:
        async with db.begin() as session:
            rows = await session.execute(
                select(
                    models.InboxUpdate.update_id,
                    models.InboxUpdate.status,
                    models.InboxUpdate.processed_by,
                ).order_by(models.InboxUpdate.update_id)
            )
            return [(u, s, by) for u, s, by in rows]
    finally:
        await db.dispose()


@dataclass(frozen=True)
class Scenario:
    backend: str
    mode: str
    reports: int
    kills: int
    db_url: str


@pytest.fixture(
    params=[("sqlite", "polling", 10, 3), ("postgresql", "webhook", 8, 2)],
    ids=["sqlite-polling", "postgresql-webhook"],
)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    backend, mode, reports, kills = request.param
    if backend == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("pg_database")
        asyncio.run(_empty_tables(url))
    return Scenario(backend, mode, reports, kills, url)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The run's PostgreSQL database, emptied."""
    asyncio.run(_empty_tables(pg_database))
    return pg_database


async def test_killed_at_random_nothing_lost_nothing_doubled(
    scenario: Scenario, tmp_path: Path
) -> None:
    backend, mode, reports, kills = (
        scenario.backend,
        scenario.mode,
        scenario.reports,
        scenario.kills,
    )
    db_url = scenario.db_url
    rng = random.Random(f"{SEED}:{backend}:{mode}")
    sb = await prepare(db_url)
    port = free_port()
    webhook = {"WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram", "WEBHOOK_SECRET": SECRET}
    env = bot_env(sb, db_url, tmp_path, port, **(webhook if mode == "webhook" else {}))
    bot = BotProcess("bot", tmp_path, env, webhook=mode == "webhook")
    sent: list[int] = []
    left_behind: list[list[int]] = []  # updates stored but not done at each kill
    stream: asyncio.Task[None] | None = None
    try:
        for _ in range(kills):
            await bot.start()
            await bot.ready()
            if stream is None:
                stream = asyncio.create_task(report_stream(sb, rng, reports, sent))
            # A random moment just after the bot was handed an update: mostly mid-way between
            # receiving it, storing it, running its handlers and marking it done.
            handed = sb.updates_fetched
            await until(lambda: sb.updates_fetched > handed, timeout=rng.uniform(0.5, 1.5))  # noqa: B023
            await asyncio.sleep(rng.uniform(0.0, 0.25))
            await bot.kill()
            left = [u for u, status, _ in await inbox_rows(db_url) if status == "pending"]
            left_behind.append(left)
        assert stream is not None
        await stream
        await bot.start()
        await bot.ready()
        everything = await until(lambda: set(acks_by_report(sb)) >= set(sent), timeout=30)
        assert everything, f"unanswered: {set(sent) - set(acks_by_report(sb))}\n{bot.logs()}"
        assert await bot.stop() == 0  # SIGTERM: a clean stop
        in_db = await reports_in_db(db_url)
        rows = await inbox_rows(db_url)
    finally:
        if stream is not None:
            stream.cancel()
        if bot.proc is not None and bot.proc.returncode is None:
            await bot.kill()
        await sb.stop()
    assert len(sent) == reports
    # Every report exactly once in the database (the unique key also forbids a second).
    assert in_db == {f"m:{message_id}": 1 for message_id in sent}
    acks = acks_by_report(sb)
    assert set(acks) == set(sent) and all(n >= 1 for n in acks.values())
    assert {status for _, status, _ in rows} == {"done"}
    handed_again = sorted(u for u, n in sb.handed_out.items() if n > 1)
    print(
        f"\n{backend}/{mode}: {bot.starts} starts ({kills} killed), {reports} reports, "
        f"stored but not done at each kill: {left_behind}, "
        f"updates handed out again: {handed_again}, acknowledgements sent twice: "
        f"{sorted(k for k, n in acks.items() if n > 1)}"
    )


class RoundRobin:
    """One public address for several bot processes: each POST goes to the next backend."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = 0
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.http: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.Response:
        assert self.http is not None
        target = self.backends[self.turn % len(self.backends)]
        self.turn += 1
        headers = {k: v for k, v in request.headers.items() if k in (SECRET_HEADER, "Content-Type")}
        try:
            async with self.http.post(target, data=await request.read(), headers=headers) as r:
                return web.Response(status=r.status, body=await r.read())
        except aiohttp.ClientError:
            return web.Response(status=502)

    async def __aenter__(self) -> RoundRobin:
        self.http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/telegram", self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/telegram"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.runner is not None and self.http is not None
        await self.runner.cleanup()
        await self.http.close()


async def test_two_processes_on_postgresql_each_update_once(pg_url: str, tmp_path: Path) -> None:
    pg_database = pg_url
    rng = random.Random(f"{SEED}:two")
    sb = await prepare(pg_database)
    ports = [free_port(), free_port()]
    bots: list[BotProcess] = []
    sent: list[int] = []
    try:
        async with RoundRobin([f"http://127.0.0.1:{p}/telegram" for p in ports]) as proxy:
            for i, port in enumerate(ports):
                env = bot_env(
                    sb,
                    pg_database,
                    tmp_path,
                    port,
                    WEBHOOK_URL=proxy.url,
                    WEBHOOK_SECRET=SECRET,
                    INBOX_WORKERS="2",
                )
                bots.append(BotProcess(f"bot{i + 1}", tmp_path, env, webhook=True))
            await asyncio.gather(*(b.start() for b in bots))
            await asyncio.gather(*(b.ready() for b in bots))
            # Reports into the group, and people opening the bot in private meanwhile.
            starts = list(REPORTERS)
            for i in range(12):
                message = sb.send_photo(
                    rng.choice(REPORTERS), chat_id=GROUP, caption=f"#问题 第{i + 1}处"
                )
                sent.append(message["message_id"])
                if starts and i % 3 == 0:
                    sb.send_text(starts.pop(), "/start")
                await asyncio.sleep(rng.uniform(0.0, 0.1))
            done = await until(lambda: set(acks_by_report(sb)) >= set(sent), timeout=30)
            logs = "\n".join(b.logs() for b in bots)
            assert done, f"unanswered: {set(sent) - set(acks_by_report(sb))}\n{logs}"
            await until(lambda: all(len(sb.sent(uid)) == 1 for uid in REPORTERS), timeout=10)
            assert [await b.stop() for b in bots] == [0, 0]
    finally:
        for b in bots:
            if b.proc is not None and b.proc.returncode is None:
                await b.kill()
        await sb.stop()
    rows = await inbox_rows(pg_database)
    in_db = await reports_in_db(pg_database)
    assert in_db == {f"m:{message_id}": 1 for message_id in sent}
    # Each update once: done, by one process; each report answered once, in report order.
    assert len(rows) == 16 and {status for _, status, _ in rows} == {"done"}
    assert len({by for _, _, by in rows}) == 2  # both processes took part
    answered = [m.reply_to_message_id for m in sb.sent(GROUP) if ACK in m.content]
    assert answered == sent
    assert all(len(sb.sent(uid)) == 1 for uid in REPORTERS)  # one greeting each
    assert max(sb.handed_out.values()) == 1  # no redelivery needed: nothing was lost


async def test_run_webhook_without_its_settings_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_NAMES}
    env |= {"BOT_TOKEN": TOKEN, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot", "run", "--webhook"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "configuration error: WEBHOOK_URL is not set: set WEBHOOK_URL to the public https "
        "address Telegram should post updates to, e.g. https://bot.example.org/telegram "
        "(its path is where the bot listens)"
    ]


async def test_a_busy_port_is_one_clear_line(sqlite_url: str, tmp_path: Path) -> None:
    sb = await prepare(sqlite_url)
    busy = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = busy.sockets[0].getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "bot", "run"),
            cwd=tmp_path,
            env=bot_env(sb, sqlite_url, tmp_path, port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        busy.close()
        await busy.wait_closed()
        await sb.stop()
    assert proc.returncode == 2
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith(f"configuration error: cannot listen on 127.0.0.1:{port}")
    assert "set HTTP_PORT to a free port" in last
