"""Benchmark: the 晾晒 ranking of 100 subjects over 1,000,000 problems.

    .venv/bin/python -m bench.bench_ranking            # SQLite, and PostgreSQL if reachable
    .venv/bin/python -m bench.bench_ranking --rows 200000 --no-pg

Measures, on the same database file, the bot's whole ranking path (the one aggregate query
through SQLAlchemy + aiosqlite, then the pure ranking) against the same counts asked of plain
sqlite3 with a hand-written aggregate query (goal: ratio <= 1.5); then the chart render time
for 100 subjects. On PostgreSQL the same, against plain asyncpg. Run by hand, never by the
test suite; figures go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bot.db import Database, migrate_url
from bot.rules import load_rules
from bot.services.charts import ChartText, render_ranking_chart
from bot.services.ranking import SubjectCounts, rank_subjects
from bot.services.tallies import window_counts
from bot.services.windows import WindowKind, period

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in Shanghai
SUBJECTS = 100
PG_SERVER = os.environ.get("GREENGRID_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CATEGORIES = ["industrial", "road_dust", "open_burning", "rural_sewage", "household_waste"]

# What a person would write by hand for the same counts (SQLite spelling): the window's cohort
# (assigned in it), and every problem assigned before its end that is open and overdue now.
OVERDUE = "status IN ('rectifying', 'pending_check') AND deadline < :now"
PLAIN_SQLITE = f"""
SELECT subject_id,
  count(*) FILTER (WHERE assigned_at >= :start),
  count(*) FILTER (WHERE assigned_at >= :start AND status = 'closed'),
  count(*) FILTER (WHERE assigned_at >= :start AND status = 'closed' AND submitted_on_time = 1),
  count(*) FILTER (WHERE assigned_at >= :start AND (status = 'closed' OR ({OVERDUE}))),
  count(*) FILTER (WHERE {OVERDUE}),
  min(deadline) FILTER (WHERE {OVERDUE}),
  {{days}}
FROM problems
WHERE subject_id IS NOT NULL AND assigned_at < :end AND status != 'rejected'
  AND (assigned_at >= :start OR ({OVERDUE}))
GROUP BY subject_id
"""
PLAIN_PG = (
    PLAIN_SQLITE.replace(":start", "$1")
    .replace(":end", "$2")
    .replace(":now", "$3")
    .replace("submitted_on_time = 1", "submitted_on_time")
    .replace(
        "{days}",
        "extract(epoch from sum(submitted_at - assigned_at)"
        " FILTER (WHERE assigned_at >= $1 AND status = 'closed')) / 86400",
    )
)
PLAIN_SQLITE = PLAIN_SQLITE.replace(
    "{days}",
    "sum(julianday(submitted_at) - julianday(assigned_at))"
    " FILTER (WHERE assigned_at >= :start AND status = 'closed')",
)

COLUMNS = [
    *("id", "code", "year", "seq", "category", "description", "status", "reporter_id"),
    *("village_id", "subject_id", "latitude", "longitude", "address", "deadline"),
    *("extension_until", "assigned_at", "submitted_at", "submitted_on_time", "closed_at"),
    *("source_chat_id", "source_key", "created_at"),
]


def problems(
    n: int, subject_ids: list[int], reporter_id: int, *, as_text: bool = False
) -> Iterator[tuple[Any, ...]]:
    """``n`` problems over the 420 days before NOW, in every status, subjects unevenly good.
    ``as_text``: times as SQLite stores them through SQLAlchemy (naive UTC text)."""

    def stamp(moment: datetime | None) -> Any:
        if moment is None or not as_text:
            return moment
        return moment.replace(tzinfo=None).isoformat(" ", "microseconds")  # UTC already

    rng = random.Random(2026)
    span = 420 * 86400
    quality = {s: rng.uniform(0.3, 0.95) for s in subject_ids}
    for i in range(1, n + 1):
        created = NOW - timedelta(seconds=rng.randrange(span))
        subject = rng.choice(subject_ids)
        good = quality[subject]
        roll = rng.random()
        assigned = deadline = submitted = closed = None
        on_time = None
        status = "reported"
        subject_id: int | None = None
        if roll < 0.04 and created > NOW - timedelta(days=3):
            status = "reported"
        elif roll < 0.07:
            status = "rejected"
        else:
            subject_id = subject
            assigned = created + timedelta(hours=rng.uniform(1, 48))
            if assigned >= NOW:
                assigned = NOW - timedelta(minutes=5)
            deadline = assigned + timedelta(days=rng.choice((3, 7, 15, 30)))
            if rng.random() < good or deadline < NOW - timedelta(days=60):
                took = (deadline - assigned) * rng.uniform(0.2, 1.0 / good)
                submitted = assigned + took
                if submitted < NOW:
                    on_time = submitted <= deadline
                    checked = submitted + timedelta(hours=rng.uniform(2, 72))
                    if checked < NOW:
                        status, closed = "closed", checked
                    else:
                        status = "pending_check"
                else:
                    submitted, status = None, "rectifying"
            else:
                status = "rectifying"
        yield (
            i,
            f"NH-{created.year}-{i:07d}",
            created.year,
            i,
            CATEGORIES[i % len(CATEGORIES)],
            "",
            status,
            reporter_id,
            None,
            subject_id,
            None,
            None,
            None,
            stamp(deadline),
            None,
            stamp(assigned),
            stamp(submitted),
            on_time,
            stamp(closed),
            None,
            None,
            stamp(created),
        )


def _sqlite_value(value: Any) -> Any:
    # The way SQLAlchemy stores an aware UTC time in SQLite: naive UTC text with microseconds.
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")  # all UTC already
    return value


def _org_rows() -> tuple[list[tuple[Any, ...]], list[int]]:
    areas: list[tuple[Any, ...]] = [(1, "district", "NH", "南湖区", None)]
    names = "东西南北中上下前后左右"
    for i in range(SUBJECTS):
        name = f"{names[i % 11]}{names[(i // 11) % 11]}{'镇' if i % 2 else '街道'}{i:02d}"
        areas.append((i + 2, "subject", f"NH-S{i:03d}", name, 1))
    return areas, [a[0] for a in areas[1:]]


def build_sqlite(path: Path, rows: int) -> float:
    migrate_url(f"sqlite+aiosqlite:///{path}")
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: the indexes grow in memory
    areas, subject_ids = _org_rows()
    now = _sqlite_value(NOW)
    conn.executemany(
        "INSERT INTO areas (id, kind, code, name, parent_id, created_at) VALUES (?,?,?,?,?,?)",
        [(*a, now) for a in areas],
    )
    conn.execute(
        "INSERT INTO people (id, telegram_id, full_name, started_private, created_at) "
        "VALUES (1, 1001, '王主任', 1, ?)",
        (now,),
    )
    insert = f"INSERT INTO problems ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    for row in problems(rows, subject_ids, 1, as_text=True):
        batch.append(row)
        if len(batch) == 50_000:
            conn.executemany(insert, batch)
            batch.clear()
    conn.executemany(insert, batch)
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


async def _race(
    plain: Callable[[], Awaitable[Any]], ours: Callable[[], Awaitable[Any]], repeat: int
) -> tuple[float, float, Any, Any]:
    """Median times of the two, run in turns (so that a busy moment on the machine hits both
    alike), after one warm-up each (page cache, statement caches)."""
    plain_result, ours_result = await plain(), await ours()
    plain_times, ours_times = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        plain_result = await plain()
        plain_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        ours_result = await ours()
        ours_times.append(time.perf_counter() - started)
    return (
        statistics.median(plain_times),
        statistics.median(ours_times),
        plain_result,
        ours_result,
    )


def _totals(standings: Any) -> tuple[int, int, int]:
    rows = [r.counts for r in standings.ranked + standings.apart]
    return sum(c.assigned for c in rows), sum(c.due for c in rows), sum(c.overdue for c in rows)


def _plain_totals(rows: list[Any]) -> tuple[int, int, int]:
    return sum(r[1] for r in rows), sum(r[4] for r in rows), sum(r[5] for r in rows)


async def bench_sqlite(path: Path, repeat: int) -> dict[str, float]:
    rules = load_rules().ranking
    window = period(WindowKind.year, NOW.astimezone(ZONE).date(), ZONE)
    plain = sqlite3.connect(path)
    params = {
        "start": _sqlite_value(window.start),
        "end": _sqlite_value(window.end),
        "now": _sqlite_value(NOW),
    }

    async def plain_query() -> list[Any]:
        return plain.execute(PLAIN_SQLITE, params).fetchall()

    db = Database.connect(f"sqlite+aiosqlite:///{path}")

    async def ours() -> Any:
        async with db.begin() as session:
            counts = await window_counts(session, window, NOW, ZONE)
        return rank_subjects(counts.subjects, rules)

    try:
        plain_s, ours_s, plain_rows, standings = await _race(plain_query, ours, repeat)
    finally:
        await db.dispose()
        plain.close()
    assert len(standings.ranked) + len(standings.apart) == SUBJECTS
    assert _totals(standings) == _plain_totals(plain_rows), "the two queries disagree"
    return {"plain_s": plain_s, "ours_s": ours_s, "ratio": ours_s / plain_s}


def bench_chart(repeat: int, subjects: int = SUBJECTS) -> dict[str, float]:
    """Render the chart of ``subjects`` towns ``repeat`` times (after a first, font-loading
    render that is timed apart)."""
    areas, _ids = _org_rows()
    rules = load_rules().ranking
    rng = random.Random(7)
    counts = []
    for area_id, _kind, code, name, _parent in areas[1 : subjects + 1]:
        assigned = rng.randrange(5, 60)
        closed = rng.randrange(0, assigned + 1)
        due = rng.randrange(closed, assigned + 1)
        counts.append(
            SubjectCounts(
                area_id,
                name,
                code,
                assigned=assigned,
                closed=closed,
                closed_on_time=rng.randrange(0, closed + 1),
                due=due,
                overdue=due - closed,
                longest_overdue_days=rng.uniform(0, 12),
                rectify_days_total=closed * rng.uniform(2, 12),
            )
        )
    standings = rank_subjects(counts, rules)
    text = ChartText(
        title="晾晒排名 · 2026年（截至 11月23日 09:00）",
        axis="得分",
        legend={"green": "绿码", "yellow": "黄码", "red": "红码"},
        empty="暂无可排名的单位",
    )
    times = []
    size = 0
    for _ in range(repeat + 1):
        started = time.perf_counter()
        png = render_ranking_chart(standings, {}, text)
        times.append(time.perf_counter() - started)
        size = len(png)
    return {
        "chart_s": statistics.median(times[1:]),
        "first_chart_s": times[0],
        "png_kb": size / 1024,
    }


async def bench_postgres(rows: int, repeat: int) -> dict[str, float] | None:
    try:
        conn = await asyncpg.connect(PG_SERVER, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"PostgreSQL not reachable ({exc.__class__.__name__}): skipped")
        return None
    name = f"greengrid_bench_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    server = PG_SERVER.rsplit("/", 1)[0]
    url = f"{server}/{name}"
    try:
        await asyncio.to_thread(migrate_url, url.replace("postgresql://", "postgresql+asyncpg://"))
        conn = await asyncpg.connect(url)
        started = time.perf_counter()
        areas, subject_ids = _org_rows()
        await conn.copy_records_to_table(
            "areas",
            records=[(*a, NOW) for a in areas],
            columns=["id", "kind", "code", "name", "parent_id", "created_at"],
        )
        await conn.execute(
            "INSERT INTO people (id, telegram_id, full_name, started_private, created_at) "
            "VALUES (1, 1001, '王主任', true, $1)",
            NOW,
        )
        await conn.copy_records_to_table(
            "problems", records=problems(rows, subject_ids, 1), columns=COLUMNS
        )
        await conn.execute("ANALYZE")
        load_s = time.perf_counter() - started
        rules = load_rules().ranking
        window = period(WindowKind.year, NOW.astimezone(ZONE).date(), ZONE)

        async def plain_query() -> list[Any]:
            return list(await conn.fetch(PLAIN_PG, window.start, window.end, NOW))

        db = Database.connect(url.replace("postgresql://", "postgresql+asyncpg://"))

        async def ours() -> Any:
            async with db.begin() as session:
                counts = await window_counts(session, window, NOW, ZONE)
            return rank_subjects(counts.subjects, rules)

        try:
            plain_s, ours_s, plain_rows, standings = await _race(plain_query, ours, repeat)
        finally:
            await db.dispose()
            await conn.close()
        assert _totals(standings) == _plain_totals(plain_rows), "the two queries disagree"
        return {"load_s": load_s, "plain_s": plain_s, "ours_s": ours_s, "ratio": ours_s / plain_s}
    finally:
        admin = await asyncpg.connect(PG_SERVER)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--keep", type=Path, help="keep the SQLite file here")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="greengrid-bench-"))
    path = args.keep or folder / "bench.db"
    path.unlink(missing_ok=True)
    print(f"generating {args.rows:,} problems for {SUBJECTS} subjects in {path} …")
    load_s = build_sqlite(path, args.rows)
    size_mib = path.stat().st_size / 2**20
    print(f"  SQLite: generated and inserted in {load_s:.1f} s ({size_mib:.0f} MiB)")
    result = asyncio.run(bench_sqlite(path, args.repeat))
    print(
        f"SQLite ranking (median of {args.repeat}): "
        f"plain sqlite3 {result['plain_s'] * 1000:.0f} ms, "
        f"greengrid {result['ours_s'] * 1000:.0f} ms, ratio {result['ratio']:.2f} (goal <= 1.5)"
    )
    for subjects in (SUBJECTS, 10):
        chart = bench_chart(args.repeat, subjects)
        print(
            f"chart of {subjects} subjects (median of {args.repeat}): "
            f"{chart['chart_s'] * 1000:.0f} ms "
            f"(first in the process {chart['first_chart_s'] * 1000:.0f} ms), "
            f"PNG {chart['png_kb']:.0f} KiB"
        )
    if not args.no_pg:
        pg = asyncio.run(bench_postgres(args.rows, args.repeat))
        if pg is not None:
            print(
                f"PostgreSQL: loaded with COPY in {pg['load_s']:.1f} s; ranking plain asyncpg "
                f"{pg['plain_s'] * 1000:.0f} ms, greengrid {pg['ours_s'] * 1000:.0f} ms, "
                f"ratio {pg['ratio']:.2f}"
            )
    if args.keep is None:
        path.unlink(missing_ok=True)
        for extra in folder.iterdir():
            extra.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
