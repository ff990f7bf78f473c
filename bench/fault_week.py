"""The full fault week (tests/fault_world.py) for several seeds: a fifth of the Bot API calls
fail (502s, timeouts after the call was done, drops, bursts of two 429s) through a scripted
week of reports, assignments, rectifications, a claim and seven mornings; each seed's week is
checked as the suite checks its short week (every change once, every promised notice and
scheduled message delivered, nothing parked).

    .venv/bin/python -m bench.fault_week --seeds 5,6,7,8
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import traceback
from pathlib import Path

from tests.fault_world import check, scripted_week, week_world


async def one(seed: int, db: str | None) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="greengrid-faultweek-") as tmp:
        url = db or f"sqlite+aiosqlite:///{tmp}/week.db"
        started = time.monotonic()
        async with week_world(url, Path(tmp)) as h:
            done = await scripted_week(h, full=True, seed=seed)
            try:
                await check(h, done)
                ok, why = True, ""
            except AssertionError as exc:
                ok, why = False, "".join(traceback.format_exception_only(exc)).strip()[:300]
        total = time.monotonic() - started
    dealt = ", ".join(f"{k} {n}" for k, n in sorted(done.dealt.items()))
    line = (
        f"seed {seed}: {'ok' if ok else 'FAILED'}; the week {done.seconds:.1f}s "
        f"(all {total:.1f}s); {sum(done.dealt.values())} faults in {done.calls} calls ({dealt})"
    )
    return ok, line + (f"\n    {why}" if why else "")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="5", help="comma-separated seeds (default 5)")
    parser.add_argument(
        "--db", help="an empty PostgreSQL database URL, for one seed (default: a SQLite file each)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    failed = 0
    for seed in (int(s) for s in args.seeds.split(",")):
        ok, line = await one(seed, args.db)
        failed += not ok
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
