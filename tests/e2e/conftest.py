"""The real application against the local Telegram stand-in over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.harness import Harness, running_bot
from bot.services.org import import_org, parse_org_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The example district's rules (its location); the shipped defaults have none.
EXAMPLE_RULES = EXAMPLES / "rules.yaml"

ADMIN = 1001
STRANGER = 6666
GROUP = -100500


async def start_world(h: Harness) -> None:
    async with h.db.begin() as session:
        await import_org(session, parse_org_file(EXAMPLES / "org.yaml"))
    h.sb.add_user(ADMIN, "王主任")
    h.sb.add_user(STRANGER, "路人甲")
    for uid, name in [(2001, "李联络"), (2002, "周联络"), (3001, "陈干部"), (4001, "赵志愿")]:
        h.sb.add_user(uid, name)
    h.sb.add_group(
        GROUP, "南湖区生态环境工作群", members=[ADMIN, STRANGER, 2001, 3001, 4001], admins=[ADMIN]
    )


@pytest.fixture
async def bot(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", rules_file=EXAMPLE_RULES
    ) as h:
        await start_world(h)
        yield h


@pytest.fixture
async def bot_any_db(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The same on each database backend."""
    async with running_bot(
        db_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", rules_file=EXAMPLE_RULES
    ) as h:
        await start_world(h)
        yield h
