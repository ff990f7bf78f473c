"""Benchmark: the bot's resident size with a big database and a big backlog, and over a soak.

    .venv/bin/python -m bench.memory                 # 100k problems, 20k people, 10k backlog
    .venv/bin/python -m bench.memory --soak          # one hour of steady traffic (3600 s)
    .venv/bin/python -m bench.memory --soak 1200 --rate 2

Builds a SQLite file (migrated by the project's own migrations; the example organisation
imported, its three towns' work groups bound) and bulk-inserts ``--people`` people and
``--problems`` problems (one photo each, already downloaded) with plain sqlite3. Then starts
the bot as a real process (``python -m bot run``, long polling, as in production) against the
local Telegram stand-in hosted here (rate-limit windows × ``--speed``), and reads the child's
``VmRSS`` / ``VmHWM`` from ``/proc/PID/status``.

Default mode: ``--backlog`` updates (nine in ten a photo report with #问题 in one of the three
groups from one of 500 grid workers, one in ten a /help in a private chat) are queued before the
bot starts; it works them off; RSS is sampled every 0.5 s until every update is done in the
inbox and every report was answered.

``--soak [SECONDS]``: steady traffic (``--rate`` reports a second, a /help every 10th event, a
/rank in a group each minute) for SECONDS, RSS sampled each minute (``--every``); prints the
start, end, peak and the least-squares slope (MiB per hour, over all samples and over the
second half). Goal: under 200 MB, and flat. Run by hand; figures go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

import models
from bench.bench_ranking import problems as generated_problems
from bot.db import Database, migrate_url
from bot.harness import TOKEN, free_port
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox
from bot.services import chats, people
from bot.services.org import import_org, parse_org_file
from models.base import utcnow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ADMIN = 1001
GROUPS = {-100801: "NH-DQ", -100802: "NH-XS", -100803: "NH-BH"}
PEOPLE_BASE = 10_000_000  # telegram ids of the generated people: PEOPLE_BASE + i
REPORTERS = 500  # of the generated people, these are in the groups and report
TALKERS = 2_000  # of the generated people, these write to the bot in private
ACK = "已登记为问题"
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")  # as SQLAlchemy stores


async def _world(url: str) -> list[int]:
    """The example organisation, the admin and the three bound groups; the subjects' ids."""
    db = Database.connect(url)
    try:
        async with db.begin() as session:
            await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
            admin = await people.ensure_person(session, ADMIN, "王主任", None)
            subject_ids = []
            for chat_id, code in GROUPS.items():
                area = await session.scalar(select(models.Area.id).where(models.Area.code == code))
                assert area is not None
                subject_ids.append(area)
                await chats.bind_group(
                    session, chat_id, f"{code} 工作群", area, by_person_id=admin.id, now=utcnow()
                )
        return subject_ids
    finally:
        await db.dispose()


def build_database(path: Path, n_problems: int, n_people: int) -> float:
    started = time.perf_counter()
    url = f"sqlite+aiosqlite:///{path}"
    migrate_url(url)
    subject_ids = asyncio.run(_world(url))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    now = _stamp(NOW)
    first_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM people").fetchone()[0]
    person_ids = list(range(first_id, first_id + n_people))
    conn.executemany(
        "INSERT INTO people (id, telegram_id, full_name, started_private, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (pid, PEOPLE_BASE + i, f"网格员{i:05d}", i < TALKERS, now)
            for i, pid in enumerate(person_ids)
        ],
    )
    columns = [
        *("id", "code", "year", "seq", "category", "description", "status", "reporter_id"),
        *("village_id", "subject_id", "latitude", "longitude", "address", "deadline"),
        *("extension_until", "assigned_at", "submitted_at", "submitted_on_time", "closed_at"),
        *("source_chat_id", "source_key", "created_at"),
    ]
    insert = f"INSERT INTO problems ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    photo = (
        "INSERT INTO problem_photos (problem_id, kind, file_id, file_unique_id, message_id, "
        "sha256, size, download_attempts, created_at) "
        "VALUES (?, 'before', ?, ?, NULL, ?, 900, 0, ?)"
    )
    rng = random.Random(9)
    batch: list[tuple[Any, ...]] = []
    photos: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.executemany(insert, batch)
        conn.executemany(photo, photos)
        batch.clear()
        photos.clear()

    for row in generated_problems(n_problems, subject_ids, 0, as_text=True):
        values = list(row)
        values[5] = f"第{row[0]}处 河边有垃圾堆放，气味较大"
        values[7] = rng.choice(person_ids)
        batch.append(tuple(values))
        photos.append((row[0], f"gen-file-{row[0]}", f"gen-u-{row[0]}", f"{row[0]:064x}", now))
        if len(batch) == 20_000:
            flush()
    flush()
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def slope_mib_per_hour(samples: list[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [kib / 1024 for _, kib in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx * 3600


@dataclass
class Traffic:
    sb: Sandbox
    rng: random.Random
    reports: dict[int, list[int]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    helps: int = 0
    ranks: int = 0

    def report(self) -> None:
        group = self.rng.choice(list(GROUPS))
        reporter = PEOPLE_BASE + self.rng.randrange(REPORTERS)
        n = sum(len(v) for v in self.reports.values()) + 1
        message = self.sb.send_photo(
            reporter, chat_id=group, caption=f"#问题 第{n}处 河道边有生活垃圾堆放"
        )
        self.reports[group].append(message["message_id"])

    def help(self) -> None:
        self.sb.send_text(PEOPLE_BASE + self.rng.randrange(TALKERS), "/help")
        self.helps += 1

    def charts(self) -> int:
        """The ranking charts the bot has sent to the groups (each /rank answers with one)."""
        return sum(m.method == "sendPhoto" for g in GROUPS for m in self.sb.sent(g))

    def rank(self) -> None:
        self.sb.send_text(ADMIN, "/rank", chat_id=self.rng.choice(list(GROUPS)))
        self.ranks += 1

    def event(self, i: int) -> None:
        if i % 10 == 9:
            self.help()
        else:
            self.report()

    @property
    def n_reports(self) -> int:
        return sum(len(v) for v in self.reports.values())

    def answered(self) -> int:
        """Reports that got their acknowledgement (a reply in the thread)."""
        total = 0
        for group, sent in self.reports.items():
            acked = {
                m.reply_to_message_id
                for m in self.sb.sent(group)
                if ACK in m.content and m.reply_to_message_id is not None
            }
            total += len(acked.intersection(sent))
        return total


def make_sandbox(speed: float) -> Sandbox:
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(speed))
    sb.add_user(ADMIN, "王主任")
    for i in range(TALKERS):
        sb.add_user(PEOPLE_BASE + i, f"网格员{i:05d}")
    members = [ADMIN, *(PEOPLE_BASE + i for i in range(REPORTERS))]
    for chat_id, code in GROUPS.items():
        sb.add_group(chat_id, f"{code} 工作群", members=members, admins=[ADMIN], bot_is_admin=True)
    return sb


def bot_env(sb: Sandbox, db_url: str, workdir: Path, port: int, speed: float) -> dict[str, str]:
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}
    keep |= {"MALLOC_ARENA_MAX", "PYTHONMALLOC"}  # allocator settings, to compare them
    env = {k: v for k, v in os.environ.items() if k in keep}
    return env | {
        "BOT_TOKEN": TOKEN,
        "BOT_API_BASE_URL": sb.root_url,
        "DATABASE_URL": db_url,
        "ADMIN_IDS": str(ADMIN),
        "MEDIA_DIR": str(workdir / "media"),
        "RULES_FILE": str(EXAMPLES / "rules.yaml"),
        "RATE_LIMIT_SCALE": str(speed),
        "HTTP_PORT": str(port),
    }


async def start_bot(env: dict[str, str], workdir: Path) -> asyncio.subprocess.Process:
    log = (workdir / "bot.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=workdir,  # no .env from the checkout
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.returncode is not None:
                raise SystemExit(f"the bot exited early; see {workdir / 'bot.log'}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{env['HTTP_PORT']}/healthz") as response:
                    if response.status == 200:
                        return proc
            if time.monotonic() > deadline:
                raise SystemExit(f"the bot did not get ready; see {workdir / 'bot.log'}")
            await asyncio.sleep(0.05)


async def stop_bot(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def inbox_done(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM inbox WHERE status = 'done'").fetchone()[0])
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


async def run(args: argparse.Namespace, path: Path, workdir: Path) -> dict[str, Any]:
    sb = make_sandbox(args.speed)
    await sb.start()
    traffic = Traffic(sb, random.Random(2026))
    backlog = 0 if args.soak else args.backlog
    for i in range(backlog):
        traffic.event(i)
    env = bot_env(sb, f"sqlite+aiosqlite:///{path}", workdir, free_port(), args.speed)
    proc: asyncio.subprocess.Process | None = None
    result: dict[str, Any] = {}
    try:
        started = time.monotonic()
        proc = await start_bot(env, workdir)
        pid = proc.pid
        ready_s = time.monotonic() - started
        rss0, _ = rss_kib(pid)
        print(f"bot pid {pid} ready after {ready_s:.1f} s, RSS {mib(rss0)}", flush=True)
        samples: list[tuple[float, int]] = [(0.0, rss0)]
        if not args.soak:
            expected = backlog
            while True:
                await asyncio.sleep(0.5)
                rss, hwm = rss_kib(pid)
                samples.append((time.monotonic() - started, rss))
                done = inbox_done(path)
                if len(samples) % 20 == 0:
                    print(
                        f"  {samples[-1][0]:6.0f} s: RSS {mib(rss)} (peak {mib(hwm)}), "
                        f"{done}/{expected} done, {traffic.answered()} reports answered",
                        flush=True,
                    )
                if done >= expected and traffic.answered() == traffic.n_reports:
                    break
                if proc.returncode is not None:
                    raise SystemExit(f"the bot died; see {workdir / 'bot.log'}")
            worked_s = time.monotonic() - started
            await asyncio.sleep(2)  # settle: the media downloads of the last reports
            rss, hwm = rss_kib(pid)
            samples.append((time.monotonic() - started, rss))
            result = {
                "mode": "backlog",
                "updates": expected,
                "reports": traffic.n_reports,
                "helps": traffic.helps,
                "worked_s": worked_s,
                "rss_start_kib": rss0,
                "rss_end_kib": rss,
                "rss_peak_sampled_kib": max(k for _, k in samples),
                "vmhwm_kib": hwm,
            }
            print(
                f"backlog of {expected} updates ({traffic.n_reports} reports, {traffic.helps} "
                f"/help) worked off in {worked_s:.1f} s ({expected / worked_s:.0f} updates/s)\n"
                f"  RSS at start {mib(rss0)}, at the end {mib(rss)}, sampled peak "
                f"{mib(result['rss_peak_sampled_kib'])}, VmHWM {mib(hwm)}",
                flush=True,
            )
        else:
            interval = 1.0 / args.rate
            next_sample = args.every
            next_rank = 60.0
            i = 0
            t0 = time.monotonic()
            lag_max = 0
            while (elapsed := time.monotonic() - t0) < args.soak:
                traffic.event(i)
                i += 1
                if elapsed >= next_rank:
                    traffic.rank()
                    next_rank += 60.0
                if elapsed >= next_sample:
                    rss, hwm = rss_kib(pid)
                    samples.append((elapsed, rss))
                    lag = traffic.n_reports - traffic.answered()
                    lag_max = max(lag_max, lag)
                    print(
                        f"  {elapsed / 60:5.1f} min: RSS {mib(rss)} (VmHWM {mib(hwm)}), "
                        f"{traffic.n_reports} reports, {lag} not yet answered",
                        flush=True,
                    )
                    next_sample += args.every
                    if proc.returncode is not None:
                        raise SystemExit(f"the bot died; see {workdir / 'bot.log'}")
                await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
            rss, hwm = rss_kib(pid)
            samples.append((time.monotonic() - t0, rss))
            half = [s for s in samples if s[0] >= samples[-1][0] / 2]
            # The first chart (/rank after a minute) loads matplotlib: a one-off step.
            warm = [s for s in samples if s[0] >= min(args.warmup, samples[-1][0] / 2)]
            result = {
                "mode": "soak",
                "seconds": args.soak,
                "reports": traffic.n_reports,
                "helps": traffic.helps,
                "ranks": traffic.ranks,
                "charts": traffic.charts(),
                "lag_max": lag_max,
                "rss_start_kib": rss0,
                "rss_end_kib": rss,
                "rss_peak_sampled_kib": max(k for _, k in samples),
                "vmhwm_kib": hwm,
                "slope_mib_h": slope_mib_per_hour(samples),
                "slope_second_half_mib_h": slope_mib_per_hour(half),
                "slope_after_warmup_mib_h": slope_mib_per_hour(warm),
                "rss_after_warmup_kib": warm[0][1],
                "samples": samples,
            }
            print(
                f"soak of {args.soak} s: {traffic.n_reports} reports, {traffic.helps} /help, "
                f"{traffic.ranks} /rank ({result['charts']} charts delivered); at most {lag_max} "
                f"reports waiting at a sample\n"
                f"  RSS at start {mib(rss0)}, at the end {mib(rss)}, sampled peak "
                f"{mib(result['rss_peak_sampled_kib'])}, VmHWM {mib(hwm)}\n"
                f"  slope {result['slope_mib_h']:+.1f} MiB/h over all samples, "
                f"{result['slope_second_half_mib_h']:+.1f} MiB/h over the second half; "
                f"from {mib(warm[0][1])} at {warm[0][0] / 60:.0f} min (after the warm-up) to "
                f"the end {result['slope_after_warmup_mib_h']:+.1f} MiB/h",
                flush=True,
            )
    finally:
        if proc is not None:
            await stop_bot(proc)
        sb.release_pollers()
        await sb.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--soak", type=float, nargs="?", const=3600.0, default=None)
    parser.add_argument("--rate", type=float, default=1.0, help="soak: events a second")
    parser.add_argument("--every", type=float, default=60.0, help="soak: seconds per sample")
    parser.add_argument(
        "--warmup", type=float, default=600.0, help="soak: seconds before the flat part"
    )
    parser.add_argument("--speed", type=float, default=0.01, help="rate-limit windows × this")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="greengrid-memory-"))
    path = workdir / "bench.db"
    print(f"generating {args.problems:,} problems and {args.people:,} people in {path} …")
    build_s = build_database(path, args.problems, args.people)
    print(f"  built in {build_s:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)", flush=True)
    result = asyncio.run(run(args, path, workdir))
    result |= {"problems": args.problems, "people": args.people, "speed": args.speed}
    result["load_average"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
