"""The weekly post's rows in the outbox: once per group and week, however often the job fires
and in however many processes; "change since last week" is against what was posted then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.context import Services
from bot.db import Database
from bot.harness import Clock
from bot.i18n import Catalogues
from bot.rules import load_rules
from bot.services import chats, problems, snapshots
from bot.services.media import MediaStore
from bot.services.problem_machine import Action
from bot.settings import load_settings
from jobs.weekly_ranking import write_weekly_ranking
from models import OutboxMessage, RankingSnapshot, RankingSnapshotRow
from tests.stories import SHANGHAI, World, local, make_world, story

MONDAY = local(2026, 11, 23, 9, 0)
DISTRICT_GROUP, TOWN_GROUP = -100_900, -100_901


class Process:
    """One bot process's services: its own engine on the shared database, the shared clock."""

    def __init__(self, url: str, media: Path, clock: Clock) -> None:
        self.services = Services(
            settings=load_settings(database_url=url, media_dir=media),
            rules=load_rules(),
            db=Database.connect(url),
            i18n=Catalogues("zh_CN"),
            media=MediaStore(media),
            clock=clock,
        )


@dataclass
class Scene:
    world: World
    clock: Clock
    first: Process
    second: Process


@pytest.fixture
async def scene(db_url: str, tmp_path: Path) -> AsyncIterator[Scene]:
    clock = Clock(fixed=MONDAY)
    first, second = (Process(db_url, tmp_path / "media", clock) for _ in range(2))
    async with first.services.db.begin() as s:
        w = await make_world(s)
        for days in (10, 20):  # 东桥镇: two closed on time
            await story(
                s,
                w,
                "NH-DQ",
                local(2026, 10, days, 9),
                ("assign", local(2026, 10, days), local(2026, 10, days + 5)),
                ("submit", local(2026, 10, days + 1)),
                ("pass", local(2026, 10, days + 2)),
            )
        # 西山街道: one overdue since 11-10
        await story(
            s,
            w,
            "NH-XS",
            local(2026, 11, 1, 9),
            ("assign", local(2026, 11, 1), local(2026, 11, 10)),
        )
        for chat_id, code in ((DISTRICT_GROUP, "NH"), (TOWN_GROUP, "NH-XS")):
            await chats.bind_group(
                s, chat_id, "群", w.areas[code], by_person_id=w.admin_id, now=MONDAY
            )
    yield Scene(w, clock, first, second)
    for p in (first, second):
        await p.services.db.dispose()


async def _rows(db: Database) -> list[tuple[str, int, dict[str, Any]]]:
    async with db.begin() as s:
        found = await s.execute(
            select(OutboxMessage.key, OutboxMessage.chat_id, OutboxMessage.payload).order_by(
                OutboxMessage.id
            )
        )
        return [(k, c, p) for k, c, p in found]


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1].isdigit() and ". " in line]


async def test_twice_in_two_processes_is_once(scene: Scene) -> None:
    first, second = scene.first, scene.second
    written = await asyncio.gather(
        write_weekly_ranking(first.services), write_weekly_ranking(second.services)
    )
    again = await write_weekly_ranking(second.services)
    db = first.services.db
    rows = await _rows(db)
    assert sum(written) == len(rows) == 2 and again == 0
    assert sorted(k for k, _c, _p in rows) == sorted(
        [f"ranking:{DISTRICT_GROUP}:2026-W48", f"ranking:{TOWN_GROUP}:2026-W48"]
    )
    async with db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(RankingSnapshot)) == 1
        assert await s.scalar(select(func.count()).select_from(RankingSnapshotRow)) == 3
    payloads = {c: p for _k, c, p in rows}
    # the chart is in the media store under the SHA-256 the row names
    png = first.services.media.get(payloads[DISTRICT_GROUP]["photo_sha256"])
    assert png is not None and png.startswith(b"\x89PNG")
    district, town = payloads[DISTRICT_GROUP]["text"], payloads[TOWN_GROUP]["text"]
    # the first post: no moves; 西山 (0 − 5, clipped) is red by its 12 days overdue
    assert _table_lines(district) == [
        "1. 🟡 东桥镇  100.0分  整改100%  按期100%  超期0",
        "2. 🔴 西山街道  0.0分  整改0%  按期0%  超期1  ⚠️超期13天",
    ]
    assert "未排名（交办少于 1 件）：北湖镇" in district
    assert "本群单位" not in district  # a district group has no subject of its own
    assert "👉 本群单位 西山街道：第 2/2 名，红码，0.0分" in town.splitlines()


async def test_moves_are_against_what_was_posted_then(scene: Scene) -> None:
    w, services = scene.world, scene.first.services
    await write_weekly_ranking(services)
    # The week after: 西山's deadline is extended to 12-05 (not overdue any more), 东桥 gets a
    # problem overdue since 11-27, 北湖 one closed on time.
    scene.clock.fixed = MONDAY + timedelta(days=7)
    async with services.db.begin() as s:
        xs_code = w.codes[2]
        for action, at, deadline in (
            (Action.request_extension, local(2026, 11, 24), local(2026, 12, 5)),
            (Action.approve_extension, local(2026, 11, 24, 11), None),
        ):
            done = await problems.transition(
                s, xs_code, action, w.admin_id, now=at, deadline=deadline
            )
            assert done is not None and not isinstance(done, str)
        await story(
            s,
            w,
            "NH-DQ",
            local(2026, 11, 24, 9),
            ("assign", local(2026, 11, 24), local(2026, 11, 27)),
        )
        await story(
            s,
            w,
            "NH-BH",
            local(2026, 11, 24, 9),
            ("assign", local(2026, 11, 24), local(2026, 11, 30)),
            ("submit", local(2026, 11, 25)),
            ("pass", local(2026, 11, 26)),
        )
    # Last week's snapshot is what was posted, whatever the data has become since.
    async with services.db.begin() as s:
        before = await snapshots.posted_ranking(s, "2026-W48", SHANGHAI)
    assert before is not None
    assert [(r.name, r.rank, r.score) for r in before.standings.ranked] == [
        ("东桥镇", 1, 100.0),
        ("西山街道", 2, 0.0),
    ]
    assert [r.name for r in before.standings.apart] == ["北湖镇"]

    assert await write_weekly_ranking(services) == 2
    rows = {k: p for k, _c, p in await _rows(services.db)}
    # 北湖 100 (not ranked last week: new); 东桥 2/3 and 2/3 − 5 = 61.7 (1 → 2);
    # 西山 0 closed and nothing due: 100 × (0 + 0.5) = 50 (2 → 3)
    assert _table_lines(rows[f"ranking:{DISTRICT_GROUP}:2026-W49"]["text"]) == [
        "1. 🟢 北湖镇  100.0分  整改100%  按期100%  超期0  新",
        "2. 🟡 东桥镇  61.7分  整改67%  按期67%  超期1  ↓1",
        "3. 🔴 西山街道  50.0分  整改0%  按期—  超期0  ↓1",
    ]
    async with services.db.begin() as s:
        assert await s.scalar(select(func.count()).select_from(RankingSnapshot)) == 2


async def test_a_weekly_window_posts_the_week_just_ended(scene: Scene) -> None:
    """With `ranking.window: week`, Monday's post ranks Monday to Sunday before it."""
    services = scene.first.services
    services.rules = services.rules.model_copy(
        update={"ranking": services.rules.ranking.model_copy(update={"window": "week"})}
    )
    async with services.db.begin() as s:
        await story(s, scene.world, "NH-BH", local(2026, 11, 18, 9),
                    ("assign", local(2026, 11, 18), local(2026, 11, 25)),
                    ("submit", local(2026, 11, 19)), ("pass", local(2026, 11, 20)))  # fmt: skip
    await write_weekly_ranking(services)
    async with services.db.begin() as s:
        posted = await snapshots.posted_ranking(s, "2026-W48", SHANGHAI)
    assert posted is not None
    assert (posted.window.first.isoformat(), posted.window.last.isoformat()) == (
        "2026-11-16",
        "2026-11-22",
    )
    assert [r.name for r in posted.standings.ranked] == ["北湖镇"]
    text = {c: p for _k, c, p in await _rows(services.db)}[DISTRICT_GROUP]["text"]
    assert text.startswith("📊 晾晒排名 · 2026年第47周（截至 2026-11-23 09:00）")
