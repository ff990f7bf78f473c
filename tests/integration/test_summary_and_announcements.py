"""The summary's figures, the unreachable-leader mark and the announcements' status changes on
each database (SQLite and PostgreSQL): the same answers, and each change made once."""

from __future__ import annotations

from datetime import date, timedelta

from bot.db import Database
from bot.rules import load_rules
from bot.services import announcements, chats, people, summary
from bot.services.roles import Role
from bot.services.windows import WindowKind, period
from tests.stories import SHANGHAI, local, make_world, story

MONDAY = local(2026, 11, 30, 8, 30)


async def test_summary_figures_and_the_unreachable_mark(db: Database) -> None:
    async with db.begin() as s:
        w = await make_world(s)
        await story(  # this week: reported, assigned, closed late (gone overdue)
            s, w, "NH-DQ", local(2026, 11, 23, 9),
            ("assign", local(2026, 11, 23), local(2026, 11, 24)),
            ("submit", local(2026, 11, 25)), ("pass", local(2026, 11, 26)),
        )  # fmt: skip
        await story(  # the week before: reported, assigned; overdue since 11-20
            s, w, "NH-XS", local(2026, 11, 17, 9),
            ("assign", local(2026, 11, 17), local(2026, 11, 20)),
        )  # fmt: skip
        leader = await people.ensure_person(s, 5002, "钱领导", None)
        await people.grant_role(s, leader.id, Role.leader, w.areas["NH"])
    week = period(WindowKind.week, date(2026, 11, 29), SHANGHAI)
    async with db.begin() as s:
        figures = await summary.leader_summary(
            s, week, now=MONDAY, zone=SHANGHAI, rules=load_rules()
        )
        (found,) = await summary.leaders(s)
    assert (figures.reported.now, figures.reported.before) == (1, 1)
    assert (figures.assigned.now, figures.assigned.before) == (1, 1)
    assert (figures.closed.now, figures.closed.before) == (1, 0)
    assert (figures.went_overdue.now, figures.went_overdue.before) == (1, 1)
    assert figures.overdue_now == 1 and figures.longest_overdue[0].overdue_days == 10
    assert [name for name, _kinds in figures.red] == ["西山街道"]
    assert not found.reachable
    async with db.begin() as s:
        assert await summary.note_unreachable(s, [found.person_id], now=MONDAY) == [
            (5002, "钱领导")
        ]
    async with db.begin() as s:  # once
        assert await summary.note_unreachable(s, [found.person_id], now=MONDAY) == []
    async with db.begin() as s:  # opening the bot clears it
        await people.ensure_person(s, 5002, "钱领导", None, private=True)
    async with db.begin() as s:
        assert await summary.note_unreachable(s, [found.person_id], now=MONDAY) != []


async def test_announcements_change_status_once(db: Database) -> None:
    async with db.begin() as s:
        w = await make_world(s)
        for chat_id, code in ((-1001, "NH"), (-1002, "NH-DQ")):
            await chats.bind_group(
                s, chat_id, "群", w.areas[code], by_person_id=w.admin_id, now=MONDAY
            )
        made = [
            await announcements.queue(
                s,
                created_by_id=w.admin_id,
                target_chat_id=target,
                text=f"公告{i}",
                photo_file_id=None,
                send_at=MONDAY + timedelta(hours=i),
                respects_quiet_hours=True,
                now=MONDAY,
            )
            for i, target in enumerate((None, -1002, -1002))
        ]
    async with db.begin() as s:
        cancelled = await announcements.cancel(s, made[1].id, by_person_id=w.admin_id, now=MONDAY)
        assert not isinstance(cancelled, announcements.CancelRefusal)
        assert cancelled.status == "cancelled" and cancelled.cancelled_by_name == "王主任"
        again = await announcements.cancel(s, made[1].id, by_person_id=w.admin_id, now=MONDAY)
        assert again is announcements.CancelRefusal.cancelled
    async with db.begin() as s:
        await chats.unbind(s, -1002)
    async with db.begin() as s:
        released = await announcements.release_due(s, now=MONDAY + timedelta(hours=3))
    assert [(r.announcement.id, r.chat_ids) for r in released] == [
        (made[0].id, [-1001]),  # all groups bound now: the town's was unbound
        (made[2].id, []),  # its one group is gone: dropped
    ]
    async with db.begin() as s:
        assert await announcements.release_due(s, now=MONDAY + timedelta(hours=4)) == []
        assert [a.status for a in await announcements.recent(s)] == [
            "dropped",
            "cancelled",
            "released",
        ]
        refused = await announcements.cancel(s, made[0].id, by_person_id=w.admin_id, now=MONDAY)
        assert refused is announcements.CancelRefusal.released
