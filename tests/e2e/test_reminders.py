"""The morning reminders end to end, with the clock under the test's control: what is due and
overdue at the deadline's edges and across midnight in Shanghai, one message per person, the
groups' overdue lists, escalation to the leaders, quiet hours, the job fired twice, /remind."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.harness import Clock, Harness, running_bot
from bot.sandbox import formatting
from bot.services.problem_machine import Status
from bot.services.roles import Role
from jobs.reminders import JOB_NAME
from tests.e2e.conftest import ADMIN, GROUP, STRANGER, start_world
from tests.e2e.reminder_world import (
    admin,
    bind,
    deliveries,
    drained,
    local,
    person,
    problem,
    row_count,
    rows,
    sender_looked,
    texts_to,
)

LIAISON, OTHER, BOTH, LEADER = 2001, 2002, 2003, 5001
TOWN_GROUP = -100700
MORNING = local(2026, 3, 10, 9, 0)  # a Tuesday, the job's default time


async def fire(h: Harness) -> None:
    """The scheduled job runs, as the JobQueue runs it."""
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(JOB_NAME)
    await job.run(h.app)


@pytest.fixture
async def town(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """09:00 in Shanghai; 东桥镇 with two liaisons (one also of 西山街道), 西山街道 with one, a
    leader; the district's group (GROUP) and 东桥镇's group (TOWN_GROUP) bound."""
    clock = Clock(fixed=MORNING)
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "media", clock=clock
    ) as h:
        await start_world(h)
        await admin(h)
        await person(h, LIAISON, "李联络", Role.liaison, "NH-DQ")
        await person(h, OTHER, "周联络", Role.liaison, "NH-XS")
        await person(h, BOTH, "吴<两镇>", Role.liaison, "NH-DQ")
        await person(h, BOTH, "吴<两镇>", Role.liaison, "NH-XS")
        await person(h, LEADER, "郑区长", Role.leader, "NH")
        h.sb.add_group(TOWN_GROUP, "东桥镇工作群", members=[ADMIN, LIAISON, BOTH])
        await bind(h, GROUP, "NH")
        await bind(h, TOWN_GROUP, "NH-DQ")
        yield h


async def test_due_soon_and_overdue_at_the_deadlines_edges(town: Harness) -> None:
    h, now = town, MORNING
    liaison_id = await person(h, LIAISON, "李联络", Role.liaison, "NH-DQ")
    at_48h = await problem(h, now + timedelta(hours=48))
    past_48h = await problem(h, now + timedelta(hours=48, seconds=1))
    due_now = await problem(h, now)  # due this very second: not yet overdue
    a_second_late = await problem(h, now - timedelta(seconds=1))
    closed_late = await problem(
        h, now - timedelta(days=2), status=Status.closed, liaison=liaison_id
    )
    checking_late = await problem(
        h, now - timedelta(days=2), status=Status.pending_check, liaison=liaison_id
    )
    other_town = await problem(h, now - timedelta(days=1), subject="NH-XS")

    await fire(h)
    await drained(h)
    (text,) = texts_to(h, LIAISON, "今日提醒")
    overdue, due = text.split("48 小时内到期")
    assert "已超期（1 项）" in overdue and a_second_late in overdue
    assert "超期 1 天" in overdue
    assert at_48h in due and due_now in due and "（2 项）" in due
    for absent in (past_48h, closed_late, checking_late, other_town):
        assert absent not in text
    # The problem waiting for its check is the district's business, not the liaison's.
    (district,) = texts_to(h, GROUP, "超期问题通报")
    assert checking_late + "（待核查）" in district and a_second_late in district
    assert other_town in district and closed_late not in district


async def test_overdue_days_count_local_dates_across_midnight(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A deadline at 23:59:59 in Shanghai: due at that second, one day overdue the next, two
    days overdue at 07:59 two days on, which is still the day before in UTC."""
    rules = tmp_path / "rules.yaml"
    rules.write_text('schedules: {quiet_start: "00:00", quiet_end: "00:00"}\n')  # no quiet hours
    clock = Clock(fixed=local(2026, 3, 10, 23, 59, 59))
    async with running_bot(
        sqlite_url, admin_ids=[ADMIN], media_dir=tmp_path / "m", clock=clock, rules_file=rules
    ) as h:
        await start_world(h)
        await person(h, LIAISON, "李联络", Role.liaison, "NH-DQ")
        code = await problem(h, local(2026, 3, 10, 23, 59, 59))

        await fire(h)
        await drained(h)
        clock.fixed = local(2026, 3, 11, 0, 0, 0)
        await fire(h)
        await drained(h)
        clock.fixed = local(2026, 3, 12, 7, 59, 0)
        assert clock().day == 11  # UTC has not reached the 12th
        await fire(h)
        await drained(h)

        first, second, third = texts_to(h, LIAISON, code)
        assert "（2026-03-10）" in first and "期限 2026-03-10" in first and "已超期" not in first
        assert "（2026-03-11）" in second and "超期 1 天" in second
        assert "（2026-03-12）" in third and "超期 2 天" in third
        keys = [r.key for r in await rows(h)]
        assert keys == [f"remind:{LIAISON}:2026-03-{d}" for d in (10, 11, 12)]


async def test_one_message_per_person_with_buttons_to_open_each(town: Harness) -> None:
    h, now = town, MORNING
    codes = [await problem(h, now - timedelta(days=d)) for d in (1, 2)]
    codes.append(await problem(h, now + timedelta(hours=30)))
    xs_code = await problem(h, now - timedelta(days=1), subject="NH-XS")

    await fire(h)
    await drained(h)
    assert deliveries(h, "今日提醒") == {LIAISON: 1, OTHER: 1, BOTH: 1}
    (mine,) = [m for m in h.sb.sent(LIAISON) if "今日提醒" in m.content]
    assert all(code in mine.content for code in codes) and xs_code not in mine.content
    assert mine.buttons == [[f"查看 {c}"] for c in (codes[1], codes[0], codes[2])]
    (both,) = texts_to(h, BOTH, "今日提醒")  # liaison of two towns: still one message
    assert all(code in both for code in [*codes, xs_code])
    # The district's group: one message, a line per town; the town's group: its own only.
    (district,) = texts_to(h, GROUP, "超期问题通报")
    assert "东桥镇：超期 2 项，最长 2 天" in district and "西山街道：超期 1 项" in district
    assert "李联络" in district and "吴<两镇>" in district and "周联络" in district
    (town_list,) = texts_to(h, TOWN_GROUP, "超期问题通报")
    assert "西山街道" not in town_list and xs_code not in town_list
    # The liaisons are mentioned by link, and the HTML (a name with "<" in it) is valid.
    html = next(r for r in await rows(h) if r.chat_id == TOWN_GROUP).payload["text"]
    assert f'<a href="tg://user?id={LIAISON}">李联络</a>' in html
    assert f'<a href="tg://user?id={BOTH}">吴&lt;两镇&gt;</a>' in html
    assert "（联络员：李联络 吴<两镇>）" in town_list  # said who they are, not just named
    assert formatting.plain_text(html, "HTML") == town_list

    card = await h.press(LIAISON, mine, f"查看 {codes[0]}")
    assert codes[0] in card.content and "提交整改" in card.buttons[0]
    mark = h.sb.mark()  # a reminder's button for a problem that is gone, or forged
    await h.press_answer(LIAISON, mine, data="p:show:NH-2026-9999")
    assert "没有编号为 NH-2026-9999 的问题" in (await h.wait_for(LIAISON, mark, "9999")).content


async def test_escalation_after_three_days_once_a_day(town: Harness) -> None:
    h = town
    code = await problem(h, local(2026, 3, 7, 23, 59, 59))  # overdue since the 8th began

    await fire(h)  # the 10th: 3 days overdue, not more
    await drained(h)
    assert texts_to(h, LEADER, "超期超过") == []
    h.clock.fixed = local(2026, 3, 11, 9, 0)
    await fire(h)
    await fire(h)  # the same day again: nothing new
    await drained(h)
    (told,) = [m for m in h.sb.sent(LEADER) if "超期超过 3 天" in m.content]
    assert f"{code}（东桥镇）露天焚烧：超期 4 天" in told.content
    card = await h.press(LEADER, told, f"查看 {code}")  # a leader may open any problem
    assert f"【{code}】" in card.content and card.buttons == []
    h.clock.fixed = local(2026, 3, 12, 9, 0)
    await fire(h)
    await drained(h)
    assert len(texts_to(h, LEADER, "超期超过 3 天")) == 2
    assert "超期 5 天" in texts_to(h, LEADER, "超期超过 3 天")[-1]


async def test_quiet_hours_defer_until_morning(town: Harness) -> None:
    h = town
    code = await problem(h, local(2026, 3, 9, 23, 59, 59))
    h.clock.fixed = local(2026, 3, 10, 22, 0)
    answer = await h.reply_to(ADMIN, "/remind")
    assert "免打扰时段，将于 08:00 后发送" in answer.content
    assert "联络员 2、工作群 2、领导 0" in answer.content

    await sender_looked(h)  # it looked twice and sent nothing
    assert texts_to(h, LIAISON, code) == [] and texts_to(h, GROUP, code) == []
    assert {(r.status, r.claimed_by) for r in await rows(h)} == {("pending", None)}
    h.clock.fixed = local(2026, 3, 11, 7, 59)
    await sender_looked(h)
    assert {(r.status, r.claimed_by) for r in await rows(h)} == {("pending", None)}
    h.clock.fixed = local(2026, 3, 11, 8, 0)
    await drained(h)
    assert len(texts_to(h, LIAISON, code)) == 1 and len(texts_to(h, GROUP, code)) == 1


async def test_job_fired_twice_and_remind_write_nothing_new(town: Harness) -> None:
    h = town
    await problem(h, MORNING - timedelta(days=5))  # escalated too
    await fire(h)
    await drained(h)
    written = await row_count(h)
    assert written == 5  # 东桥镇's 2 liaisons, 2 groups, 1 leader
    await fire(h)
    answer = await h.reply_to(ADMIN, "/remind")
    assert "都已生成过" in answer.content
    await sender_looked(h)
    assert await row_count(h) == written
    assert deliveries(h, "今日提醒") == {LIAISON: 1, BOTH: 1}
    assert deliveries(h, "超期问题通报") == {GROUP: 1, TOWN_GROUP: 1}
    assert deliveries(h, "超期超过") == {LEADER: 1}


async def test_remind_is_for_admins(town: Harness) -> None:
    await problem(town, MORNING - timedelta(days=1))
    answer = await town.reply_to(STRANGER, "/remind")
    assert "只有管理员" in answer.content
    assert await row_count(town) == 0


async def test_blocked_user_is_given_up_with_a_reason_and_holds_no_one_up(
    town: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = town
    h.sb.block_bot(LIAISON)
    code = await problem(h, MORNING - timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="bot.sending.outbox_sender"):
        await fire(h)
        await drained(h)
    assert len(texts_to(h, BOTH, code)) == 1 and len(texts_to(h, GROUP, code)) == 1
    (blocked,) = [r for r in await rows(h) if r.chat_id == LIAISON]
    assert blocked.status == "gave_up" and blocked.attempts == 1
    assert blocked.last_error is not None and "blocked by the user" in blocked.last_error
    assert any(
        f"remind:{LIAISON}" in r.getMessage() and "blocked by the user" in r.getMessage()
        for r in caplog.records
    )
    h.clock.fixed = MORNING + timedelta(hours=2)  # long past any retry time
    await sender_looked(h, times=3)
    tries = [r for r in h.sb.request_log if r.chat_id == LIAISON and r.method == "sendMessage"]
    assert [r.status for r in tries] == [403]


async def test_group_the_bot_was_removed_from(town: Harness) -> None:
    h = town
    await problem(h, MORNING - timedelta(days=1))
    mark = h.sb.mark()
    h.sb.remove_bot_from_group(TOWN_GROUP, ADMIN)  # while the bot runs: it hears of it
    await h.sb.wait_fetched()
    await h.reply_to(ADMIN, "/help")  # updates are handled in order: the removal is done
    # Removed while the bot was down: no update ever comes; Telegram refuses the message.
    h.sb.chats[GROUP].bot_is_member, h.sb.chats[GROUP].bot_gone = False, "kicked"
    await fire(h)
    await drained(h)
    assert [r.chat_id for r in await rows(h) if r.kind == "overdue-group"] == [GROUP]
    (refused,) = [r for r in await rows(h) if r.chat_id == GROUP]
    assert refused.status == "gave_up" and "kicked" in (refused.last_error or "")
    assert [m for m in h.sb.sent() if m.seq > mark and m.chat_id < 0] == []
    h.clock.fixed = MORNING + timedelta(days=1)
    await fire(h)
    await drained(h)
    assert [r.chat_id for r in await rows(h) if r.kind == "overdue-group"] == [GROUP]


async def test_a_liaison_with_very_many_problems_gets_one_message_that_fits(
    town: Harness,
) -> None:
    h = town
    codes = [await problem(h, MORNING - timedelta(days=1 + i % 20)) for i in range(130)]
    await fire(h)
    await drained(h, timeout=30)
    (text,) = texts_to(h, LIAISON, "今日提醒")
    assert len(text) <= 4096
    listed = re.findall(r"NH-2026-\d{4}", text)
    assert len(listed) > 50 and set(listed) <= set(codes)
    assert f"另有 {130 - len(listed)} 项未列出" in text
    assert {r.status for r in await rows(h)} == {"sent"}
