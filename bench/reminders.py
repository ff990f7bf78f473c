"""How long the morning fan-out takes: N reminders to N liaisons' private chats, through the
real application (job → outbox → sender → rate limiter) against the local stand-in enforcing
Telegram's real limits (30 messages a second overall, 1 a second per chat).

    .venv/bin/python -m bench.reminders --n 1000

The floor is N/30 seconds; the figure is the time from the job starting to the stand-in
accepting the last message, as a ratio to that floor (goal: at most 1.05, with no 429).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.harness import Clock, running_bot
from bot.services import outbox, people, problems
from bot.services.org import import_org, parse_org_file
from bot.services.problem_machine import Action
from bot.services.problems import ReportIn
from bot.services.roles import Role
from jobs.reminders import write_reminders
from models import Area, OutboxMessage
from models.base import utcnow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ADMIN = 1001
FIRST_LIAISON = 100_000


async def run(n: int, database_url: str | None) -> dict[str, float]:
    """One fan-out of ``n`` reminders; its figures."""
    with tempfile.TemporaryDirectory(prefix="greengrid-bench-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        # Mid-morning in Shanghai, moving with the wall clock: no quiet hours in the way.
        shanghai = ZoneInfo("Asia/Shanghai")
        today = datetime.now(shanghai).date()
        ten = datetime(today.year, today.month, today.day, 10, tzinfo=shanghai).astimezone(UTC)
        clock = Clock(offset=ten - utcnow())
        async with running_bot(
            url, admin_ids=[ADMIN], speed=1.0, clock=clock, media_dir=Path(tmp) / "media"
        ) as h:
            async with h.db.begin() as session:
                await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
                town = await session.scalar(select(Area.id).where(Area.code == "NH-DQ"))
                admin = await people.ensure_person(session, ADMIN, "admin", None, private=True)
                await people.grant_role(session, admin.id, Role.admin, town)
                for uid in range(FIRST_LIAISON, FIRST_LIAISON + n):
                    person = await people.ensure_person(session, uid, f"L{uid}", None)
                    await people.grant_role(session, person.id, Role.liaison, town)
                now = clock()
                report = await problems.report_problem(
                    session,
                    ReportIn(admin.id, "open_burning", "bench", [], None, None),
                    now=now - timedelta(days=9),
                    code_prefix="NH",
                    zone_year=now.year,
                )
                await problems.transition(
                    session,
                    report.problem.code,
                    Action.assign,
                    admin.id,
                    now=now - timedelta(days=8),
                    subject_id=town,
                    deadline=now - timedelta(days=1),
                )
            for uid in range(FIRST_LIAISON, FIRST_LIAISON + n):
                h.sb.add_user(uid, f"L{uid}")
                h.sb.open_private_chat(uid)

            await asyncio.sleep(h.sender.warmup_s)  # past its start-up wait, as before 09:00
            log_start = len(h.sb.request_log)
            started = time.monotonic()
            written = await write_reminders(h.services)
            job_s = time.monotonic() - started
            assert written.liaisons == n, written
            await h.sb.wait_until(
                lambda: sum(1 for m in h.sb.sent() if m.chat_id >= FIRST_LIAISON) >= n,
                timeout=n / 30 * 3 + 30,
                what=f"{n} reminders",
            )
            accepted = [
                r
                for r in h.sb.request_log[log_start:]
                if r.method == "sendMessage" and r.status == 200
            ]
            delivered_s = max(r.t for r in accepted) - started
            while True:  # and until every row is marked
                async with h.db.begin() as session:
                    if not await outbox.backlog(session):
                        break
                await asyncio.sleep(0.01)
            marked_s = time.monotonic() - started
            async with h.db.begin() as session:
                sent_rows = await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == outbox.SENT)
                )
            per_chat = Counter(r.chat_id for r in accepted)
            gaps = [b.t - a.t for a, b in zip(accepted, accepted[30:], strict=False)]
            return {
                "n": n,
                "job_s": job_s,
                "first_s": min(r.t for r in accepted) - started,
                "delivered_s": delivered_s,
                "marked_s": marked_s,
                "floor_s": n / 30,
                # 30 at once, then 30 more each second: the last batch goes out at this time.
                "window_min_s": float(math.ceil(n / 30) - 1),
                "ratio": delivered_s / (n / 30),
                "429": h.sb.count_429,
                "violations": len(h.sb.limit_violations()),
                "duplicates": sum(c - 1 for c in per_chat.values()),
                "rows_sent": sent_rows or 0,
                "peak_in_flight": h.sender.peak_in_flight,
                "median_30_span_s": statistics.median(gaps) if gaps else 0.0,
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="reminders, one per private chat")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--db", default=None, help="a database URL (default: a fresh SQLite)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for i in range(args.runs):
        figures = asyncio.run(run(args.n, args.db))
        f = figures
        parts = [
            f"run {i + 1}: n={f['n']:.0f}",
            f"job {f['job_s']:.2f}s",
            f"first message {f['first_s']:.3f}s",
            f"last accepted {f['delivered_s']:.2f}s",
            f"all marked {f['marked_s']:.2f}s",
            f"floor N/30 {f['floor_s']:.2f}s",
            f"ratio {f['ratio']:.3f}",
            f"sliding-window minimum {f['window_min_s']:.0f}s",
            f"429s {f['429']:.0f}",
            f"limit violations {f['violations']:.0f}",
            f"duplicates {f['duplicates']:.0f}",
            f"rows sent {f['rows_sent']:.0f}",
            f"peak in flight {f['peak_in_flight']:.0f}",
            f"median span of 31 messages {f['median_30_span_s']:.3f}s",
        ]
        print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
