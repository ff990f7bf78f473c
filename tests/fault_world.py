"""A week of work while Telegram misbehaves, shared by the suite's short week
(tests/e2e/test_fault_week.py) and the full week in bench/fault_week.py: a fifth of the bot's
Bot API calls fail (502s, timeouts after the call was done, connections dropped, bursts of 429
on one chat), drawn from a seeded generator. Reports with photos in the group, a private
/report, assigning, rectifying, verifying and closing (销号), an activity claim approved, the
morning reminders and the Monday ranking and summary, all driven by the clock. At the end, with
the faults cleared (``check``): every report is one problem, every change the people made
happened once, every scheduled message reached its chat, every notice the design promises
arrived, nothing is parked, and the bot still answers.

Exactly once and at least once: the database's side of every step is exactly once (a retried
update finds its work done). What reaches a chat is at least once: a sendMessage that timed out
may have been delivered (the stand-in does the call, then stalls the answer, as real networks
can), and neither python-telegram-bot nor anyone else can ask Telegram whether it was; sending
again is the only way not to lose it. So a message may come twice exactly where the stand-in
timed out a send to that chat, and the check allows that many extra copies there, no more.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

import models
from bot.harness import TOKEN, Clock, Harness, running_bot
from bot.limits import TelegramLimits
from bot.sandbox import Sandbox, SentMessage, formatting
from bot.sandbox.faults import RandomKind
from bot.services import inbox
from bot.services.roles import Role
from jobs import schedule
from tests.e2e.conftest import ADMIN, EXAMPLE_RULES, start_world
from tests.e2e.reminder_world import drained, local, person

FIELD_GROUP = -100901
LIAISON, INSPECTOR, VOLUNTEER, CADRE, LEADER = 2001, 2101, 4001, 3001, 5001
INSIDE = (30.7512, 120.7588)  # in 南湖区
MONDAY = local(2027, 3, 1, 8, 0)  # a Monday, before the morning's jobs
SPEED = 0.05
FAULTS = 0.2
SEED = 5
WAIT = 30.0  # a step's answer may need the inbox's retries on top of the sender's
KINDS: tuple[RandomKind, ...] = ("5xx", "timeout", "drop") * 2 + ("429",)
SENDS = ("sendMessage", "sendPhoto", "sendMediaGroup", "sendDocument")


async def tick(h: Harness) -> None:
    """The schedule's tick, as the job queue runs it every half minute."""
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(schedule.TICK_JOB)
    await job.run(h.app)


@asynccontextmanager
async def week_world(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot with the district, its people and the town's bound group (no faults yet)."""
    sb = Sandbox(TOKEN, limits=TelegramLimits().scaled(SPEED), timeout_fault_s=1.0)
    await sb.start()
    try:
        async with running_bot(
            db_url,
            admin_ids=[ADMIN],
            sandbox=sb,
            speed=SPEED,
            clock=Clock(fixed=MONDAY),
            media_dir=tmp_path / "media",
            rules_file=EXAMPLE_RULES,
            bot_api_timeout_s=0.3,
            inbox_retry_s=0.1,
        ) as h:
            await start_world(h)
            for uid, name, role, area in [
                (ADMIN, "王主任", Role.admin, "NH"),
                (LIAISON, "李联络", Role.liaison, "NH-DQ"),
                (INSPECTOR, "张网格", Role.inspector, "NH-DQ"),
                (VOLUNTEER, "赵志愿", Role.volunteer, "NH-DQ-01"),
                (CADRE, "陈干部", Role.cadre, "NH-DQ-01"),
                (LEADER, "郑区长", Role.leader, "NH"),
            ]:
                await person(h, uid, name, role, area)
            sb.add_group(
                FIELD_GROUP,
                "东桥镇生态环境工作群",
                admins=[ADMIN],
                bot_is_admin=True,
                members=[ADMIN, LIAISON, INSPECTOR, VOLUNTEER],
            )
            bound = await h.reply_to(ADMIN, "/bindgroup NH-DQ", chat_id=FIELD_GROUP)
            assert "本群已绑定到东桥镇" in bound.content
            yield h
    finally:
        await sb.stop()


class Week:
    """The people's side: each step waits for what the bot says back, however often it says
    it, and for however many of the bot's tries it takes."""

    def __init__(self, h: Harness) -> None:
        self.h = h

    async def said(self, chat_id: int, since: int, containing: str) -> SentMessage:
        return await self.h.wait_for(chat_id, since, containing, timeout=WAIT)

    async def tap(
        self, user_id: int, message: SentMessage, button: str, chat_id: int, containing: str
    ) -> SentMessage:
        mark = self.h.sb.mark()
        self.h.sb.press(user_id, message, text=button)
        return await self.said(chat_id, mark, containing)

    async def tap_edit(
        self, user_id: int, message: SentMessage, button: str, containing: str
    ) -> SentMessage:
        """Tap, and wait for the message to be edited into its next menu."""
        mark = self.h.sb.mark()
        self.h.sb.press(user_id, message, text=button)
        await self.h.sb.wait_until(
            lambda: any(seq > mark for seq, _ in message.edits) and containing in message.content,
            timeout=WAIT,
            what=f"message {message.message_id} edited to say {containing!r}",
        )
        return message

    async def text(self, user_id: int, text: str, chat_id: int, containing: str) -> SentMessage:
        mark = self.h.sb.mark()
        self.h.sb.send_text(user_id, text)
        return await self.said(chat_id, mark, containing)

    async def report_in_group(self, user_id: int, caption: str) -> tuple[str, SentMessage]:
        mark = self.h.sb.mark()
        self.h.sb.send_photo(user_id, chat_id=FIELD_GROUP, caption=caption)
        card = await self.said(FIELD_GROUP, mark, "已登记为问题")
        return card.content.split("【", 1)[1].split("】", 1)[0], card

    async def assign(self, code: str, card: SentMessage) -> None:
        menu = await self.tap_edit(ADMIN, card, "交办", "交办给哪个")
        menu = await self.tap_edit(ADMIN, menu, "✓ 东桥镇", "整改期限")
        default = next(b for row in menu.buttons for b in row if "默认" in b)
        task = await self.tap(ADMIN, menu, default, LIAISON, f"交办给您单位：{code}")
        assert task.buttons == [["提交整改", "申请延期"]]

    async def rectify(self, code: str, note: str) -> SentMessage:
        """The liaison submits after-photos and a note; returns the checkers' card."""
        task = await self.said(LIAISON, 0, f"交办给您单位：{code}")
        prompt = await self.tap(LIAISON, task, "提交整改", LIAISON, "请发送整改后的照片")
        assert code in prompt.content
        mark = self.h.sb.mark()
        self.h.sb.send_photo(LIAISON)
        received = await self.said(LIAISON, mark, "完成")
        await self.tap(LIAISON, received, "完成", LIAISON, "整改情况")
        mark = self.h.sb.mark()
        await self.text(LIAISON, note, LIAISON, "已提交，等待核查")
        return await self.said(ADMIN, mark, f"{code} 已提交整改")

    async def private_report(self) -> str:
        step = await self.text(VOLUNTEER, "/report", VOLUNTEER, "第1步")
        step = await self.tap(VOLUNTEER, step, "露天焚烧", VOLUNTEER, "第2步")
        mark = self.h.sb.mark()
        self.h.sb.send_photo(VOLUNTEER)
        received = await self.said(VOLUNTEER, mark, "已收到照片")
        await self.tap(VOLUNTEER, received, "完成", VOLUNTEER, "第3步")
        await self.text(VOLUNTEER, "村口有人焚烧秸秆，烟很大", VOLUNTEER, "第4步")
        mark = self.h.sb.mark()
        self.h.sb.send_location(VOLUNTEER, *INSIDE)
        step = await self.said(VOLUNTEER, mark, "第5步")
        confirm = await self.tap(VOLUNTEER, step, "东桥村", VOLUNTEER, "请确认")
        assert "照片：1 张" in confirm.content and "焚烧秸秆" in confirm.content
        done = await self.tap(VOLUNTEER, confirm, "✅ 提交", VOLUNTEER, "上报成功，编号")
        return done.content.split("编号 ", 1)[1].split("。", 1)[0]

    async def claim(self) -> None:
        step = await self.text(VOLUNTEER, "/claim", VOLUNTEER, "第1步")
        await self.tap(VOLUNTEER, step, "清理 +5", VOLUNTEER, "第2步")
        mark = self.h.sb.mark()
        self.h.sb.send_photo(VOLUNTEER)
        await self.said(VOLUNTEER, mark, "第3步")
        mark = self.h.sb.mark()
        await self.text(VOLUNTEER, "清理河道垃圾三袋", VOLUNTEER, "已提交活动申报 #")
        card = await self.said(CADRE, mark, "活动申报 #")
        await self.tap(CADRE, card, "✅ 通过", VOLUNTEER, "已通过")

    async def morning(self, day: datetime) -> None:
        """Everyone's morning at 09:05: the schedule's tick writes what is due; it goes out."""
        self.h.clock.fixed = day.replace(hour=1, minute=5)  # 09:05 in Shanghai
        await tick(self.h)


async def settled(h: Harness, timeout: float = WAIT) -> None:
    """Until every update is done or parked and no outbox row is pending."""
    deadline = time.monotonic() + timeout
    while True:
        async with h.db.begin() as session:
            open_updates = await session.scalar(
                select(models.InboxUpdate.update_id)
                .where(models.InboxUpdate.status == inbox.PENDING)
                .limit(1)
            )
        if open_updates is None:
            break
        assert time.monotonic() < deadline, "updates still pending"
        await asyncio.sleep(0.05)
    await drained(h, timeout=timeout)


@dataclass
class Outcome:
    """What the people did in the week, and what the stand-in dealt while they did."""

    history: dict[str, list[str]] = field(default_factory=dict)  # each problem's actions
    status: dict[str, str] = field(default_factory=dict)
    promised: list[tuple[int, str]] = field(default_factory=list)  # (chat, notice)
    seconds: float = 0.0  # the week with the faults on
    calls: int = 0
    dealt: Counter[str] = field(default_factory=Counter)


LOOP = ["report", "assign", "submit", "pass_check"]


async def scripted_week(h: Harness, *, full: bool, seed: int = SEED, burst_429: int = 2) -> Outcome:
    """The week with a fifth of the calls failing. ``full``: a second report in the group is
    rectified and closed too, and every morning from Thursday to Sunday runs; the short week
    (the suite's) goes from Wednesday's claim straight to the next Monday. ``burst_429``: how
    many messages in a row a 429 burst refuses (each costs its chat a second)."""
    w, done = Week(h), Outcome()
    started = time.monotonic()
    # A 429 burst costs its chat whole seconds (retry_after is never less than 1), ``burst_429``
    # of them: one fault in seven starts one, the rest are the network's, evenly.
    h.sb.fault_rate(FAULTS, KINDS, seed=seed, burst_429=burst_429)

    # Monday: reports in the group and one in private; the admin assigns them all.
    h.clock.fixed = MONDAY + timedelta(hours=2)
    burning, card1 = await w.report_in_group(INSPECTOR, "#问题 河边有人露天焚烧垃圾")
    reported = [(burning, card1)]
    if full:
        dust, card2 = await w.report_in_group(VOLUNTEER, "#问题 工地扬尘很大，没有覆盖")
        reported.append((dust, card2))
    straw = await w.private_report()
    reported.append((straw, await w.said(ADMIN, 0, f"【{straw}】")))
    for code, card in reported:
        await w.assign(code, card)

    # Tuesday: the morning reminders; the liaison rectifies the burning, the admin closes it.
    await w.morning(local(2027, 3, 2))
    check = await w.rectify(burning, "已清理焚烧点")
    mark = h.sb.mark()
    await w.tap(ADMIN, check, "通过（销号）", INSPECTOR, f"您上报的问题 {burning} 已整改完成并销号")
    await w.said(FIELD_GROUP, mark, f"{burning} 已整改销号")

    # Wednesday: a claim approved (and in the full week the dust rectified and closed too).
    await w.morning(local(2027, 3, 3))
    await w.claim()
    if full:
        check = await w.rectify(dust, "已覆盖防尘网")
        await w.tap(
            ADMIN, check, "通过（销号）", VOLUNTEER, f"您上报的问题 {dust} 已整改完成并销号"
        )
        # Thursday to Sunday: the straw burning stays open and runs overdue; reminders daily.
        for day in range(4, 8):
            await w.morning(local(2027, 3, day))
    # The next Monday: the leader's summary at 08:30, the ranking at 09:00.
    await w.morning(local(2027, 3, 8))
    await settled(h)
    done.seconds = time.monotonic() - started

    h.sb.clear_faults()
    await settled(h)
    done.dealt = Counter(kind for _, _, kind in h.sb.faults.dealt)
    done.calls = len(h.sb.request_log)
    done.history = {burning: LOOP, straw: ["report", "assign"]}
    done.status = {burning: "closed", straw: "rectifying"}
    done.promised = [
        (VOLUNTEER, f"上报成功，编号 {straw}"),
        (INSPECTOR, f"您上报的问题 {burning} 已交办"),
        (VOLUNTEER, f"您上报的问题 {straw} 已交办"),
        (INSPECTOR, f"您上报的问题 {burning} 已整改，正在核查"),
        (FIELD_GROUP, f"{burning} 已交办给东桥镇"),
        (LIAISON, f"{burning} 已核查通过"),
        (LIAISON, f"交办给您单位：{straw}"),
        (VOLUNTEER, "已通过"),  # the claim
    ]
    if full:
        done.history[dust], done.status[dust] = LOOP, "closed"
        done.promised += [
            (VOLUNTEER, f"您上报的问题 {dust} 已交办"),
            (VOLUNTEER, f"您上报的问题 {dust} 已整改，正在核查"),
            (FIELD_GROUP, f"{dust} 已交办给东桥镇"),
            (FIELD_GROUP, f"{dust} 已整改销号"),
            (INSPECTOR, f"{dust} 已提交整改"),
            (LIAISON, f"{dust} 已核查通过"),
        ]
    return done


async def check(h: Harness, done: Outcome) -> None:
    """Everything the week promised, with the faults cleared (assertions)."""
    assert sum(done.dealt.values()) >= 0.1 * done.calls, (done.dealt, done.calls)
    assert set(done.dealt) == {"5xx", "timeout", "drop", "429"}, done.dealt

    # Every report is one problem, with exactly the history the people made.
    async with h.db.begin() as session:
        problems = {p.code: p for p in await session.scalars(select(models.Problem))}
        events = list(
            await session.scalars(select(models.ProblemEvent).order_by(models.ProblemEvent.id))
        )
        claims = list(await session.scalars(select(models.ActivityClaim)))
        updates = Counter(u.status for u in await session.scalars(select(models.InboxUpdate)))
        rows = list(await session.scalars(select(models.OutboxMessage)))
    assert {c: p.status for c, p in problems.items()} == done.status
    history = {
        code: [e.action for e in events if e.problem_id == p.id] for code, p in problems.items()
    }
    assert history == done.history
    assert [c.status for c in claims] == ["approved"]
    assert updates == Counter({inbox.DONE: updates[inbox.DONE]}), updates  # none parked

    # Every scheduled message was written once per recipient and period, and reached its chat:
    # at least once, and more than once only where a send to that chat timed out.
    timeouts = Counter(
        chat for method, chat, kind in h.sb.faults.dealt if kind == "timeout" and method in SENDS
    )
    assert rows and all(r.status == "sent" for r in rows), [(r.key, r.status) for r in rows]
    assert {"remind", "overdue-group", "ranking", "summary"} <= {r.kind for r in rows}
    for r in rows:
        text = r.payload.get("text")
        if text is not None:
            text = formatting.plain_text(text, r.payload.get("parse_mode"))
            copies = [m for m in h.sb.sent(r.chat_id) if m.content == text]
            assert 1 <= len(copies) <= 1 + timeouts[r.chat_id], (
                r.key,
                text,
                [m.content for m in h.sb.sent(r.chat_id)][-8:],
            )
        assert r.telegram_message_id in {m.message_id for m in h.sb.sent(r.chat_id)}, r.key

    # Every notice the design promises reached its chat (the cards acknowledging the group's
    # reports were waited for during the week: they have been edited into the menus since).
    missing = [(c, t) for c, t in done.promised if not any(t in m.content for m in h.sb.sent(c))]
    assert not missing
    assert h.sb.limit_violations() == []

    # The bot is alive.
    assert "/report" in (await h.reply_to(ADMIN, "/help")).content
