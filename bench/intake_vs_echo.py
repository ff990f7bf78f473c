"""Benchmark: photo reports per second through the whole bot, against a bare PTB echo bot.

    .venv/bin/python -m bench.intake_vs_echo                       # 300 reports, 5 runs each
    .venv/bin/python -m bench.intake_vs_echo --reports 500 --runs 7 --profile /tmp/gg.prof

Both bots poll the same kind of local Telegram stand-in (a fresh one per run, so each starts
with the same state) in this process, in turns: echo, greengrid, echo, greengrid, … (the order
flips every other pair), so a busy moment on the shared machine hits both alike.

- *greengrid*: the real application (``bot.harness.running_bot``, long polling as in
  production, one inbox worker as by default) on a SQLite file with the example organisation
  imported, the work group bound to 东桥镇 and its 20 grid workers known. Each report (a photo
  whose caption carries #问题) goes getUpdates → inbox (stored, acknowledged) → processor →
  handlers (intake part, problem, event, card) → the reply through the rate limiter → marked
  done; the photo is downloaded into the media store in the background.
- *echo*: a bare ``telegram.ext.Application`` (default settings, its own Updater polling with
  the same timeout) whose one handler answers every message with its caption, as a reply.

N reports are injected at once into the stand-in; the clock runs from injection until every
report has its reply (greengrid: its acknowledgement). Each bot gets one report first (warm-up,
not timed). The stand-in does not enforce rate limits here (``limits=None``) and greengrid's
own limiter runs with Telegram's windows × ``--speed`` (0.001: 20 per 60 ms in a group), so
neither caps the rate; the limiter's bookkeeping still runs. Goal: greengrid ≥ 0.6 × echo.

``--profile FILE``: one more greengrid run under cProfile (the event-loop thread, which runs
the stand-in, PTB and the bot), printed as a breakdown by package; and for every measured
greengrid run: wall time in the bot's stages, SQL statements and commits per report, and the
CPU time of the other threads (aiosqlite runs each connection's SQLite calls in a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import io
import os
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

import models
from bot.db import Database, migrate_url
from bot.harness import TOKEN, Harness, running_bot
from bot.sandbox import Sandbox
from bot.services import chats, people
from bot.services.org import import_org, parse_org_file
from models.base import utcnow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ADMIN = 1001
GROUP = -100900
REPORTERS = [5000 + i for i in range(20)]
ACK = "已登记为问题"


# ------------------------------------------------------------------ the stand-in and the world


def make_sandbox() -> Sandbox:
    sb = Sandbox(TOKEN, limits=None)
    sb.add_user(ADMIN, "王主任")
    for uid in REPORTERS:
        sb.add_user(uid, f"网格员{uid}")
    sb.add_group(
        GROUP, "东桥镇工作群", members=[ADMIN, *REPORTERS], admins=[ADMIN], bot_is_admin=True
    )
    return sb


async def _world(url: str) -> None:
    db = Database.connect(url)
    try:
        async with db.begin() as session:
            await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
            admin = await people.ensure_person(session, ADMIN, "王主任", None)
            for uid in REPORTERS:
                await people.ensure_person(session, uid, f"网格员{uid}", None)
            area = await session.scalar(select(models.Area.id).where(models.Area.code == "NH-DQ"))
            assert area is not None
            await chats.bind_group(
                session, GROUP, "东桥镇工作群", area, by_person_id=admin.id, now=utcnow()
            )
    finally:
        await db.dispose()


def make_template(folder: Path) -> Path:
    path = folder / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate_url(url)
    asyncio.run(_world(url))
    return path


def inject(sb: Sandbox, n: int, first: int) -> list[int]:
    ids = []
    for i in range(n):
        message = sb.send_photo(
            REPORTERS[(first + i) % len(REPORTERS)],
            chat_id=GROUP,
            caption=f"#问题 第{first + i + 1}处 河道边有生活垃圾堆放",
        )
        ids.append(message["message_id"])
    return ids


async def all_replied(sb: Sandbox, ids: list[int], containing: str, timeout: float) -> None:
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        answered = {
            m.reply_to_message_id
            for m in sb.sent(GROUP)
            if m.reply_to_message_id in wanted and containing in m.content
        }
        if answered == wanted:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(answered)} of {len(wanted)} answered in {timeout}s")
        await asyncio.sleep(0.01)


async def first_poll(sb: Sandbox) -> None:
    await sb.wait_until(lambda: any(r.method == "getUpdates" for r in sb.request_log))


# ------------------------------------------------------------------ instrumentation


@dataclass
class Stages:
    """Wall time spent in the bot's stages, and its SQL, during the timed part of a run."""

    wall: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    statements: collections.Counter[str] = field(default_factory=collections.Counter)
    commits: int = 0
    on: bool = False

    def timed(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                if self.on:
                    self.wall[name] += time.perf_counter() - started

        return wrapper

    def attach(self, h: Harness) -> None:
        assert h.runtime is not None
        runtime = h.runtime
        runtime.intake.take = self.timed("inbox store (getUpdates batch)", runtime.intake.take)  # type: ignore[method-assign]
        proc = runtime.processor
        proc._claim = self.timed("inbox claim (next due)", proc._claim)  # type: ignore[method-assign]
        proc._record = self.timed("inbox mark done", proc._record)  # type: ignore[method-assign]
        h.app.process_update = self.timed("handlers (process_update)", h.app.process_update)  # type: ignore[method-assign]
        engine = h.db.engine.sync_engine

        @event.listens_for(engine, "before_cursor_execute")
        def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if self.on:
                self.statements[" ".join(statement.split())[:90]] += 1

        @event.listens_for(engine, "commit")
        def _commit(_conn: Any) -> None:
            if self.on:
                self.commits += 1


# ------------------------------------------------------------------ the two bots


@dataclass
class RunResult:
    seconds: float
    main_cpu_s: float
    process_cpu_s: float
    stages: Stages | None = None


async def run_greengrid(
    template: Path, n: int, speed: float, profile: cProfile.Profile | None = None
) -> RunResult:
    folder = Path(tempfile.mkdtemp(prefix="greengrid-intake-"))
    path = folder / "bench.db"
    shutil.copy(template, path)
    sb = make_sandbox()
    await sb.start()
    stages = Stages()
    try:
        async with running_bot(
            f"sqlite+aiosqlite:///{path}",
            admin_ids=[ADMIN],
            sandbox=sb,
            speed=speed,
            media_dir=folder / "media",
            rules_file=EXAMPLES / "rules.yaml",
        ) as h:
            stages.attach(h)
            await first_poll(sb)
            await all_replied(sb, inject(sb, 1, 0), ACK, 30)  # warm-up
            await asyncio.sleep(0.3)  # its photo download, out of the way
            stages.on = True
            cpu0, main0 = time.process_time(), time.thread_time()
            if profile is not None:
                profile.enable()
            started = time.perf_counter()
            await all_replied(sb, inject(sb, n, 1), ACK, 600)
            seconds = time.perf_counter() - started
            if profile is not None:
                profile.disable()
            result = RunResult(
                seconds, time.thread_time() - main0, time.process_time() - cpu0, stages
            )
            stages.on = False
    finally:
        await sb.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


async def run_echo(n: int) -> RunResult:
    sb = make_sandbox()
    await sb.start()

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is not None:
            await message.reply_text(message.caption or message.text or "…", do_quote=True)

    app = (
        Application.builder()
        .token(TOKEN)
        .base_url(sb.api_base_url)
        .base_file_url(sb.file_base_url)
        .build()
    )
    app.add_handler(MessageHandler(filters.ALL, echo))
    try:
        await app.initialize()
        assert app.updater is not None
        await app.updater.start_polling(timeout=1, allowed_updates=Update.ALL_TYPES)
        await app.start()
        try:
            await first_poll(sb)
            await all_replied(sb, inject(sb, 1, 0), "", 30)  # warm-up
            cpu0, main0 = time.process_time(), time.thread_time()
            started = time.perf_counter()
            await all_replied(sb, inject(sb, n, 1), "", 600)
            seconds = time.perf_counter() - started
            result = RunResult(seconds, time.thread_time() - main0, time.process_time() - cpu0)
        finally:
            sb.release_pollers()
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
    finally:
        await sb.stop()
    return result


# ------------------------------------------------------------------ the profile


CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("stand-in (bot/sandbox)", ("/bot/sandbox/",)),
    ("stand-in's HTTP server (aiohttp)", ("/aiohttp/", "/multidict/", "/yarl/")),
    ("greengrid: receiving (inbox, processor)", ("/bot/receiving/", "/bot/services/inbox")),
    ("greengrid: sending (limiter, outbox)", ("/bot/sending/",)),
    ("greengrid: handlers, services, jobs", ("/handlers/", "/bot/", "/jobs/", "/models/")),
    ("PTB (telegram, telegram.ext)", ("/telegram/",)),
    ("PTB's HTTP client (httpx, httpcore, h11)", ("/httpx/", "/httpcore/", "/h11/", "/anyio/")),
    ("SQLAlchemy", ("/sqlalchemy/",)),
    ("aiosqlite (main-thread side)", ("/aiosqlite/",)),
    ("alembic/babel/yaml", ("/babel/", "/yaml/")),
    ("asyncio event loop", ("/asyncio/", "selectors.py")),
    ("json", ("/json/",)),
]


def categorise(filename: str) -> str:
    for name, needles in CATEGORIES:
        if any(needle in filename for needle in needles):
            return name
    if filename.startswith("~") or filename == "":
        return "built-ins (C functions)"
    return "other Python"


def breakdown(profile: cProfile.Profile, total_s: float) -> str:
    stats = pstats.Stats(profile)
    by_cat: dict[str, float] = collections.defaultdict(float)
    builtins_by_caller: dict[str, float] = collections.defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, func), (_cc, _nc, tottime, _ct, callers) in raw.items():
        cat = categorise(filename)
        if cat == "built-ins (C functions)":
            if "select" in func or "poll" in func:  # the event loop waiting for I/O
                by_cat["idle in select/epoll (waiting)"] += tottime
                continue
            # Charge a C function (json, sqlite3 stubs, str methods …) to whoever called it.
            spread = sum(c[2] for c in callers.values()) or 1.0
            for (cfile, _cl, _cf), caller in callers.items():
                builtins_by_caller[categorise(cfile)] += tottime * caller[2] / spread
            continue
        by_cat[cat] += tottime
    for cat, t in builtins_by_caller.items():
        by_cat[cat] += t
    lines = [f"  {'where':48} {'seconds':>8} {'share':>6}"]
    for cat, t in sorted(by_cat.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {cat:48} {t:8.2f} {t / total_s:6.1%}")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
    top = "\n".join(out.getvalue().splitlines()[6:40])
    return "\n".join(lines) + "\n\n  top functions by own time:\n" + top


# ------------------------------------------------------------------ main


def describe_stages(results: list[RunResult], n: int) -> str:
    lines = []
    wall: dict[str, list[float]] = collections.defaultdict(list)
    for r in results:
        assert r.stages is not None
        for name, t in r.stages.wall.items():
            wall[name].append(t / r.seconds)
    for name, shares in wall.items():
        lines.append(f"  {name:36} {statistics.median(shares):6.1%} of the wall time")
    other = [(r.process_cpu_s - r.main_cpu_s) / r.seconds for r in results]
    main = [r.main_cpu_s / r.seconds for r in results]
    lines.append(f"  event-loop thread CPU               {statistics.median(main):6.1%}")
    lines.append(f"  other threads' CPU (aiosqlite …)    {statistics.median(other):6.1%}")
    last = results[-1].stages
    assert last is not None
    lines.append(
        f"  per report: {sum(last.statements.values()) / n:.1f} SQL statements, "
        f"{last.commits / n:.2f} commits"
    )
    for statement, count in last.statements.most_common(18):
        lines.append(f"    {count / n:5.2f} × {statement}")
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="greengrid-intake-template-"))
    template = await asyncio.to_thread(make_template, folder)
    echo: list[RunResult] = []
    ours: list[RunResult] = []
    for i in range(args.runs):
        pair: list[tuple[str, Callable[[], Awaitable[RunResult]]]] = [
            ("echo", lambda: run_echo(args.reports)),
            ("greengrid", lambda: run_greengrid(template, args.reports, args.speed)),
        ]
        if i % 2:
            pair.reverse()
        for name, run in pair:
            result = await run()
            (echo if name == "echo" else ours).append(result)
            print(
                f"  run {i + 1} {name:9}: {args.reports} reports in {result.seconds:5.2f} s = "
                f"{args.reports / result.seconds:6.1f}/s (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    echo_s = statistics.median(r.seconds for r in echo)
    ours_s = statistics.median(r.seconds for r in ours)
    ratios = [e.seconds / o.seconds for e, o in zip(echo, ours, strict=True)]
    print(
        f"\n{args.reports} reports, median of {args.runs}:\n"
        f"  echo bot   {args.reports / echo_s:6.1f} reports/s ({echo_s:.2f} s)\n"
        f"  greengrid  {args.reports / ours_s:6.1f} reports/s ({ours_s:.2f} s)\n"
        f"  ratio {echo_s / ours_s:.2f} (goal >= 0.6); pairwise ratios "
        f"{', '.join(f'{r:.2f}' for r in ratios)}\n"
        f"  load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
        f"\nwhere greengrid's time goes (median over its runs):\n"
        f"{describe_stages(ours, args.reports)}"
    )
    if args.profile:
        profile = cProfile.Profile()
        result = await run_greengrid(template, args.reports, args.speed, profile)
        profile.dump_stats(args.profile)
        print(
            f"\nprofiled greengrid run: {args.reports} reports in {result.seconds:.2f} s "
            f"(event-loop thread CPU {result.main_cpu_s:.2f} s, other threads "
            f"{result.process_cpu_s - result.main_cpu_s:.2f} s); own time by package, "
            f"C functions charged to their caller:\n{breakdown(profile, result.seconds)}"
        )
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--speed", type=float, default=0.001, help="greengrid's limiter scale")
    parser.add_argument("--profile", type=Path, help="profile one more greengrid run into FILE")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
