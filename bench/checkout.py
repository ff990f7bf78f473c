"""How fast redemptions go: issue a code and check it out, one after another, then 50 at once
racing on one balance, each in its own transaction (as the bot does).

    .venv/bin/python -m bench.checkout                      # a fresh SQLite file
    .venv/bin/python -m bench.checkout postgresql+asyncpg://postgres@127.0.0.1:5432/DBNAME

The PostgreSQL database must exist and be empty (it is migrated here). Figures go to
BENCHMARKS.md by hand, with the machine and the date.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bot.db import Database, _sqlite_pragmas, migrate
from bot.services import points, redemptions
from bot.services.redemptions import IssuedCode, Receipt
from bot.services.roles import Role
from tests.integration.points_world import T0, cast_of, policy

SEQUENTIAL = 300
RACERS = 50
POLICY = policy(
    max_live_codes=1000, checkout_failures_per_hour=10_000, checkout_failures_per_day=10_000
)


async def run(url: str) -> None:
    engine = create_async_engine(url, pool_size=RACERS, max_overflow=0)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    db = Database(engine, async_sessionmaker(engine, expire_on_commit=False))
    await migrate(db)
    volunteer, shop, admin = await cast_of(
        db,
        [
            ("志愿者", ((Role.volunteer, "NH-DQ-01"),)),
            ("超市", ((Role.shop, "NH-DQ-01"),)),
            ("管理员", ((Role.admin, "NH"),)),
        ],
    )
    async with db.begin() as s:
        await points.correct(s, volunteer.id, 100_000, admin_id=admin.id, reason="bench", now=T0)

    async def issue() -> str:
        async with db.begin() as s:
            issued = await redemptions.issue_code(s, POLICY, volunteer.id, now=T0)
        assert isinstance(issued, IssuedCode)
        return issued.code

    async def checkout(code: str) -> object:
        async with db.begin() as s:
            return await redemptions.checkout(s, POLICY, shop.id, None, code, 1, now=T0)

    started = time.perf_counter()
    for _ in range(SEQUENTIAL):
        assert isinstance(await checkout(await issue()), Receipt)
    took = time.perf_counter() - started
    print(
        f"{engine.dialect.name}: {SEQUENTIAL} issue+checkout pairs one after another: "
        f"{took:.2f} s, {SEQUENTIAL / took:.0f} pairs/s"
    )

    codes = [await issue() for _ in range(RACERS)]
    started = time.perf_counter()
    results = await asyncio.gather(*(checkout(code) for code in codes))
    took = time.perf_counter() - started
    wins = sum(isinstance(r, Receipt) for r in results)
    print(
        f"{engine.dialect.name}: {RACERS} checkouts at once on one balance: {took:.2f} s "
        f"({wins} succeeded, {took / RACERS * 1000:.0f} ms each on average)"
    )
    await engine.dispose()


def main() -> None:
    if len(sys.argv) > 1:
        url = sys.argv[1]
    else:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    asyncio.run(run(url))


if __name__ == "__main__":
    main()
