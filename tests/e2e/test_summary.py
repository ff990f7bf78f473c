"""The leaders' summary end to end: every figure against a hand-built fortnight (the week and
the week before), the chart, a tap opening a problem, /summary for a chosen window and its
errors, who may not ask; a leader who cannot be written to reported to the admins once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

import models
from bot.harness import Clock, Harness, running_bot
from bot.services import claims, people, redemptions
from bot.services.points import Policy
from bot.services.problems import PhotoIn
from bot.services.roles import Role
from jobs import leader_summary
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.helpers import table_counts
from tests.e2e.reminder_world import drained, person, rows
from tests.stories import SHANGHAI, World, local, make_world, story

LEADER, LIAISON_DQ, LIAISON_XS, CADRE, SHOP, VOLUNTEER = 5001, 2001, 2002, 3001, 5101, 4001
MONDAY = local(2026, 11, 30, 8, 30)  # the summary's time; the week just ended is 2026-W48


@dataclass
class Fortnight:
    h: Harness
    world: World
    codes: dict[str, str]


async def fire(h: Harness) -> None:
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(leader_summary.WEEKLY.name)
    await job.run(h.app)


@pytest.fixture
async def fortnight(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Fortnight]:
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", clock=Clock(fixed=MONDAY)
    ) as h:
        await start_world(h)
        await person(h, LEADER, "郑区长", Role.leader, "NH")
        await person(h, LIAISON_DQ, "李联络", Role.liaison, "NH-DQ")
        await person(h, LIAISON_XS, "周联络", Role.liaison, "NH-XS")
        cadre = await person(h, CADRE, "陈干部", Role.cadre, "NH-DQ-01")
        shop = await person(h, SHOP, "东桥超市", Role.shop, "NH-DQ-01")
        policy = Policy(h.services.rules.points, SHANGHAI)
        codes: dict[str, str] = {}
        async with h.db.begin() as s:
            w = await make_world(s)
            # This week (11-23 … 11-29)
            codes["p1"] = await story(  # reported, assigned, closed on time
                s, w, "NH-DQ", local(2026, 11, 23, 9),
                ("assign", local(2026, 11, 23), local(2026, 11, 26)),
                ("submit", local(2026, 11, 25)), ("pass", local(2026, 11, 26)), points=policy,
            )  # fmt: skip
            codes["p2"] = await story(  # reported, assigned, overdue since 11-27
                s, w, "NH-DQ", local(2026, 11, 24, 9),
                ("assign", local(2026, 11, 24), local(2026, 11, 27)), points=policy,
            )  # fmt: skip
            codes["p3"] = await story(s, w, None, local(2026, 11, 25, 9), points=policy)
            # The week before (11-16 … 11-22)
            codes["p5"] = await story(  # closed this week, late: gone overdue this week
                s, w, "NH-BH", local(2026, 11, 17, 9),
                ("assign", local(2026, 11, 17), local(2026, 11, 24)),
                ("submit", local(2026, 11, 26)), ("pass", local(2026, 11, 27)), points=policy,
            )  # fmt: skip
            codes["p6"] = await story(  # all within the week before, on time
                s, w, "NH-DQ", local(2026, 11, 18, 9),
                ("assign", local(2026, 11, 18), local(2026, 11, 21)),
                ("submit", local(2026, 11, 20)), ("pass", local(2026, 11, 21)), points=policy,
            )  # fmt: skip
            codes["p7"] = await story(  # assigned, then rejected: never overdue
                s, w, "NH-XS", local(2026, 11, 19, 9),
                ("assign", local(2026, 11, 19), local(2026, 11, 22)),
                ("reject", local(2026, 11, 20)), points=policy,
            )  # fmt: skip
            # Earlier
            codes["p4"] = await story(  # overdue since 11-20 (gone overdue the week before)
                s, w, "NH-XS", local(2026, 11, 10, 9),
                ("assign", local(2026, 11, 10), local(2026, 11, 20)), points=policy,
            )  # fmt: skip
            codes["p8"] = await story(  # overdue since 11-12
                s, w, "NH-DQ", local(2026, 11, 5, 9),
                ("assign", local(2026, 11, 5), local(2026, 11, 12)), points=policy,
            )  # fmt: skip
            # The volunteer's week: a claim approved (+5) and 4 points spent at the shop
            claim = await claims.submit_claim(
                s, policy, w.reporter_id, "cleanup", PhotoIn("c1", "c1u"), "清理河道",
                now=local(2026, 11, 25, 10),
            )  # fmt: skip
            assert isinstance(claim, claims.ClaimView)
            approved = await claims.approve_claim(
                s, policy, claim.id, cadre, now=local(2026, 11, 25, 12)
            )
            assert isinstance(approved, tuple)
            issued = await redemptions.issue_code(
                s, policy, w.reporter_id, now=local(2026, 11, 26, 10)
            )
            assert isinstance(issued, redemptions.IssuedCode)
            receipt = await redemptions.checkout(
                s, policy, shop, w.areas["NH-DQ-01"], issued.code, 4,
                now=local(2026, 11, 26, 10, 5),
            )  # fmt: skip
            assert isinstance(receipt, redemptions.Receipt)
        yield Fortnight(h, w, codes)


CAPTION = [
    "📋 工作简报 · 2026年第48周（2026-11-23 至 2026-11-29，截至 2026-11-30 08:30）",
    "新增问题 3 件（上期 3，持平）",  # p1 p2 p3 | p5 p6 p7
    "交办 2 件（上期 3，↓1）",  # p1 p2 | p5 p6 p7
    "销号 2 件（上期 1，↑1）",  # p1 p5 | p6
    "新增超期 2 件（上期 1，↑1）",  # p2 (open), p5 (closed late) | p4
    "目前超期未整改 3 件",  # p2 p4 p8
    "🔴 红码单位 2 个（见下条）",
]


def body(codes: dict[str, str]) -> list[str]:
    return [
        # 2026 to date: 北湖 A1 C1 T0 D1: 50; 东桥 A4 (p1 p2 p6 p8) C2 T2 D4 O2: 50 − 10 = 40;
        # 西山 A1 (p4) C0 D1 O1: 0 − 5 → 0. Thirds of 3: one green, one red.
        "🔴 红码单位 2 个（晾晒排名 · 2026年）：",
        "• 东桥镇：第 2/3 名，居中、有问题超期 18 天（超过 7 天即红码）",
        "• 西山街道：第 3/3 名，在后三分之一、有问题超期 10 天（超过 7 天即红码）",
        "",
        "⏳ 超期最久的 3 个问题：",
        f"1. {codes['p8']} 东桥镇 · 道路扬尘 · 超期 18 天 · 联络员：李联络",
        f"2. {codes['p4']} 西山街道 · 道路扬尘 · 超期 10 天 · 联络员：周联络",
        f"3. {codes['p2']} 东桥镇 · 道路扬尘 · 超期 3 天 · 联络员：李联络",
        "",
        # claims approved 1 | 0; earned: assigned p1 p2 (+2 +2), closed p1 p5 (+3 +3), the
        # claim +5 = 15 | assigned p5 p6 p7 (+6), closed p6 (+3) = 9 (p7's −2 is not earned);
        # redeemed 4 | 0
        "🙋 志愿者：活动申报通过 1 件（上期 0，↑1）；获得积分 15（上期 9，↑6）；"
        "兑换积分 4（上期 0，↑4）",
        "📊 晾晒排名（2026年）：3 个单位参加排名，🟢 1 · 🟡 0 · 🔴 2",
    ]


async def test_the_monday_summary_figure_by_figure(fortnight: Fortnight) -> None:
    h, codes = fortnight.h, fortnight.codes
    mark = h.sb.mark()
    await fire(h)
    await drained(h)
    first, second = [m for m in h.sb.sent(LEADER) if m.seq > mark]
    assert first.photo and first.content.splitlines() == CAPTION
    chart = h.sb.file_for(first.photo[-1])
    assert chart is not None and chart.data.startswith(b"\x89PNG")
    assert second.content.splitlines() == body(codes)
    assert second.buttons == [[f"查看 {codes[p]}"] for p in ("p8", "p4", "p2")]
    keys = sorted(r.key for r in await rows(h))
    assert keys == [f"summary:{LEADER}:2026-W49", f"summary:{LEADER}:2026-W49:2"]

    # A tap opens the problem; the job again (a retry, a restart) writes nothing new.
    mark = h.sb.mark()
    h.sb.press(LEADER, second, text=f"查看 {codes['p8']}")
    card = await h.wait_for(LEADER, mark, codes["p8"])
    assert "东桥镇" in card.content
    await fire(h)
    assert sorted(r.key for r in await rows(h)) == keys


async def test_summary_on_demand_for_a_chosen_window(fortnight: Fortnight) -> None:
    h, codes = fortnight.h, fortnight.codes
    photo, details = await h.say(LEADER, "/summary 2026-11-23..2026-11-29", n=2)
    # the same week as a range: the same figures against the 7 days before
    assert photo.photo
    assert photo.content.splitlines()[0] == (
        "📋 工作简报 · 2026-11-23 至 2026-11-29（2026-11-23 至 2026-11-29，截至 2026-11-30 08:30）"
    )
    assert photo.content.splitlines()[1:] == CAPTION[1:]
    assert details.content.splitlines() == body(codes)
    # this week so far (Monday 00:00 to 08:30) against last Monday's same hours
    photo, _details = await h.say(ADMIN, "/summary", n=2)
    lines = photo.content.splitlines()
    assert lines[1:5] == [
        "新增问题 0 件（上期 0，持平）",
        "交办 0 件（上期 0，持平）",
        "销号 0 件（上期 0，持平）",
        "新增超期 0 件（上期 0，持平）",
    ]
    assert lines[-1] == "（本期尚未结束，与上期同一时段相比）"


async def test_who_may_not_and_bad_windows(fortnight: Fortnight) -> None:
    h = fortnight.h
    await person(h, VOLUNTEER, "赵志愿", Role.volunteer, "NH-DQ-01")
    await h.reply_to(ADMIN, "/start")
    await h.reply_to(STRANGER, "/help")  # everyone who writes is noted: that is not a change
    await h.reply_to(ADMIN, "/help", chat_id=GROUP)
    before = await table_counts(h)
    assert "只有分管领导和管理员" in (await h.reply_to(STRANGER, "/summary")).content
    assert "只有分管领导和管理员" in (await h.reply_to(VOLUNTEER, "/summary")).content
    assert "私聊" in (await h.reply_to(ADMIN, "/summary", chat_id=GROUP)).content
    assert "看不懂“next week”" in (await h.reply_to(LEADER, "/summary next week")).content
    assert "不是有效的月份" in (await h.reply_to(LEADER, "/summary 2026-13")).content
    assert "还没有开始" in (await h.reply_to(LEADER, "/summary 2027-03")).content
    huge = await h.reply_to(LEADER, "/summary " + "x" * 5000)
    assert "看不懂" in huge.content and len(huge.content) < 300
    assert await table_counts(h) == before


async def test_a_leader_who_cannot_be_written_to_is_reported_once(fortnight: Fortnight) -> None:
    h = fortnight.h
    never, blocked = 5002, 5003
    await h.reply_to(ADMIN, "/start")  # the configured admin; make_world's admin is another
    h.sb.add_user(never, "钱领导")
    async with h.db.begin() as s:  # a leader by role who has never opened the bot
        row = await people.ensure_person(s, never, "钱领导", None)
        district = await s.scalar(select(models.Area.id).where(models.Area.code == "NH"))
        await people.grant_role(s, row.id, Role.leader, district)
    await person(h, blocked, "孙领导", Role.leader, "NH")
    h.sb.users[blocked].blocked = True  # blocked the bot while it was down: nobody heard

    async def told() -> list[tuple[int, str]]:
        found = [r for r in await rows(h) if r.kind == "leader-unreachable"]
        return sorted((r.chat_id, r.payload["text"].split("（")[0]) for r in found)

    notices = [
        (ADMIN, "⚠️ 无法给分管领导 孙领导"),
        (ADMIN, "⚠️ 无法给分管领导 钱领导"),
        (91_001, "⚠️ 无法给分管领导 孙领导"),
        (91_001, "⚠️ 无法给分管领导 钱领导"),
    ]
    await fire(h)
    await drained(h)
    # 钱领导 gets nothing (Telegram would refuse); 孙领导's summary is refused (blocked):
    # both are reported to every admin, once (孙领导's second row is refused too: not again)
    assert await told() == notices
    summaries = {(r.chat_id, r.status) for r in await rows(h) if r.kind == "summary"}
    assert summaries == {(LEADER, "sent"), (blocked, "gave_up")}
    got = [m.content for m in h.sb.sent(ADMIN) if "无法给分管领导" in m.content]
    assert len(got) == 2 and "钱领导（ID 5002）" in got[0] + got[1]

    # A leader who blocks the bot while it runs: the bot hears of it and the admins are told
    # at once, once.
    third = 5004
    await person(h, third, "吴领导", Role.leader, "NH")
    mark = h.sb.mark()
    h.sb.block_bot(third)
    await h.wait_for(ADMIN, mark, "吴领导")
    notices += [(ADMIN, "⚠️ 无法给分管领导 吴领导"), (91_001, "⚠️ 无法给分管领导 吴领导")]
    notices.sort()
    assert await told() == notices

    # The next Monday: none of them is written to, nor reported again.
    h.clock.fixed = local(2026, 12, 7, 8, 30)
    await fire(h)
    await drained(h)
    assert await told() == notices
    assert {r.chat_id for r in await rows(h) if r.key.endswith("2026-W50")} == {LEADER}

    # 钱领导 opens the bot: the Monday after, they get the summary too.
    await h.reply_to(never, "/start")
    h.clock.fixed = local(2026, 12, 14, 8, 30)
    await fire(h)
    await drained(h)
    assert {r.chat_id for r in await rows(h) if r.key.endswith("2026-W51")} == {LEADER, never}
    assert await told() == notices


async def test_the_daily_summary_when_the_rules_ask_for_it(sqlite_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("schedules: {leader_summary_daily: true}\n", encoding="utf-8")
    clock = Clock(fixed=local(2026, 12, 1, 8, 30))  # a Tuesday
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "m", rules_file=rules, clock=clock
    ) as h:
        await start_world(h)
        await person(h, LEADER, "郑区长", Role.leader, "NH")
        async with h.db.begin() as s:
            w = await make_world(s)
            await story(s, w, "NH-DQ", local(2026, 11, 30, 9))  # Monday: one new problem
        assert h.app.job_queue is not None
        (job,) = h.app.job_queue.get_jobs_by_name(leader_summary.DAILY.name)
        mark = h.sb.mark()
        await job.run(h.app)
        await drained(h)
        first, _second = [m for m in h.sb.sent(LEADER) if m.seq > mark]
        assert first.content.splitlines()[:2] == [
            "📋 工作日报 · 2026-11-30（截至 2026-12-01 08:30）",
            "新增问题 1 件（上期 0，↑1）",
        ]
        assert sorted(r.key for r in await rows(h)) == [
            f"summary:{LEADER}:2026-12-01",
            f"summary:{LEADER}:2026-12-01:2",
        ]
        clock.fixed = local(2026, 12, 7, 8, 30)  # Monday: the weekly one covers the day
        await job.run(h.app)
        assert len(await rows(h)) == 2


async def test_no_daily_summary_by_default(fortnight: Fortnight) -> None:
    queue = fortnight.h.app.job_queue
    assert queue is not None
    assert queue.get_jobs_by_name(leader_summary.DAILY.name) == ()
    (weekly,) = queue.get_jobs_by_name(leader_summary.WEEKLY.name)
    assert weekly.next_t is not None
    local_next = weekly.next_t.astimezone(SHANGHAI)
    assert (local_next.weekday(), local_next.hour, local_next.minute) == (0, 8, 30)
