"""`make demo`: the real application against the local Telegram stand-in, playing a scene.

The scene: an admin from ADMIN_IDS sets up, invites a liaison with buttons and a cadre in one
line, the cadre invites a volunteer, a used-up link is refused, the bot joins the work group and
is bound to the district (a stranger's attempt is refused), /help in Chinese and in English.
Then the problem loop: a photo report in the town's group is assigned, rectified, fails
verification once, is rectified again and closed (销号); a second report with the same photo is
flagged as a possible duplicate and rejected; a volunteer reports privately step by step; the
admin looks at the first problem's card and history with /issue. The volunteer's points: earned
through a report and an approved activity claim, checked with /points, and spent at a shop with
a one-time code. Another problem is left undone, the clock moves past its deadline, and the
morning reminders go out: the liaison's, the groups', the leader's. Then two Mondays of 晾晒
(the second with each town's move since the first, and the leader's Monday summary at 08:30
before it), /rank in the town's group, the ledger exported by the admin, and an announcement
queued for 18:00 that reaches both groups at its time. (The schedule's tick at 18:00 also catches
up what the demo's jumping clock kept from firing that day: the day's reminders and the month's
leaderboard, once each.)
The transcript is printed and saved to demo-out/transcript.txt, with the last Monday's chart
(demo-out/ranking.png) and the ledger (demo-out/ledger.xlsx).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path

from sqlalchemy import func, select

import models
from bot.harness import Harness, running_bot
from bot.sandbox import SentMessage, tiny_png
from bot.services import people, problems
from bot.services.org import AreaSpec, import_org, parse_org_file
from bot.services.problem_machine import Action
from bot.services.problems import PhotoIn, ReportIn
from bot.services.roles import AreaKind
from jobs import leader_summary, reminders, schedule
from jobs.weekly_ranking import weekly_ranking
from models import Area

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_ORG = EXAMPLES / "org.yaml"
# The example district's rules: its location, so that a report far away is refused.
EXAMPLE_RULES = EXAMPLES / "rules.yaml"
LINK = re.compile(r"start=([A-Za-z0-9_-]+)")
PROBLEM_CODE = re.compile(r"【([A-Z]+-\d{4}-\d{4})】")

ADMIN, LIAISON, CADRE, VOLUNTEER, LATECOMER, STRANGER = 1001, 2001, 3001, 4001, 4002, 6666
INSPECTOR, SHOP = 2101, 5101
LEADER = 5002
GROUP = -1001234567
TOWN_GROUP = -1001234568
RIVERSIDE = (30.7512, 120.7588)
PRIVATE_REPORT = "村口水沟有黑臭污水"
ANNOUNCEMENT = "典型案例：某村露天焚烧秸秆被处罚款。秋冬季严禁露天焚烧，发现请随手上报。"


def _problem_code(message: SentMessage) -> str:
    """The code on a problem card (the year is whatever year it is now)."""
    match = PROBLEM_CODE.search(message.text or "")
    if match is None:
        raise RuntimeError(f"the bot sent no problem card: {message.text!r}")
    return match.group(1)


def _code(message: SentMessage) -> str:
    match = LINK.search(message.text or "")
    if match is None:
        raise RuntimeError(f"the bot sent no invite link: {message.text!r}")
    return match.group(1)


async def play(h: Harness, out: Path) -> None:
    sb = h.sb
    async with h.db.begin() as session:
        await import_org(session, parse_org_file(EXAMPLE_ORG))
    for uid, name in [
        (ADMIN, "王主任"),
        (LIAISON, "李联络"),
        (CADRE, "陈干部"),
        (VOLUNTEER, "赵志愿"),
        (LATECOMER, "钱同学"),
        (STRANGER, "路人甲"),
    ]:
        sb.add_user(uid, name)
    sb.add_user(5001, "Emma", language_code="en")

    await h.say(ADMIN, "/start")
    menu = await h.reply_to(ADMIN, "/invite")
    for label in ("属地联络员", "东桥镇", "限一人使用"):
        menu = await h.press(ADMIN, menu, label)
    liaison_code = _code(menu)
    await h.say(LIAISON, f"/start {liaison_code}")
    await h.say(LATECOMER, f"/start {liaison_code}")  # single use: already taken

    cadre_code = _code(await h.reply_to(ADMIN, "/invite cadre NH-DQ-01"))
    await h.say(CADRE, f"/start {cadre_code}")
    menu = await h.reply_to(CADRE, "/invite")
    for label in ("志愿者", "东桥村", "多人可用"):
        menu = await h.press(CADRE, menu, label)
    await h.say(VOLUNTEER, f"/start {_code(menu)}")
    await h.say(VOLUNTEER, "/help")

    sb.add_group(
        GROUP,
        "南湖区生态环境工作群",
        members=[ADMIN, LIAISON, CADRE, VOLUNTEER, STRANGER],
        admins=[ADMIN],
    )
    mark = sb.mark()
    sb.bot_added_to_group(GROUP, ADMIN)
    await sb.wait_messages(GROUP, n=1, since=mark)
    await h.say(STRANGER, "/bindgroup", chat_id=GROUP)
    menu = await h.reply_to(ADMIN, "/bindgroup", chat_id=GROUP)
    await h.press(ADMIN, menu, "南湖区（区）")

    await h.say(STRANGER, "/frobnicate")
    chooser = await h.reply_to(5001, "/lang")
    await h.press(5001, chooser, "English")
    await h.say(5001, "/help")
    await play_problems(h)
    await play_points(h)
    await play_reminders(h)
    await play_ranking(h, out)


async def play_problems(h: Harness) -> None:
    """A report in the town's group goes round the whole loop: assigned, rectified, failed once
    on verification, rectified again, closed. A duplicate is flagged and rejected; a volunteer
    reports privately, step by step."""
    sb = h.sb
    sb.add_user(INSPECTOR, "张网格")
    code = _code(await h.reply_to(ADMIN, "/invite inspector NH-DQ"))
    await h.say(INSPECTOR, f"/start {code}")
    sb.add_group(
        TOWN_GROUP,
        "东桥镇生态环境工作群",
        admins=[ADMIN],
        bot_is_admin=True,
        members=[ADMIN, LIAISON, INSPECTOR, VOLUNTEER],
    )
    await h.say(ADMIN, "/bindgroup NH-DQ", chat_id=TOWN_GROUP)

    photo = tiny_png(2026)
    mark = sb.mark()
    sb.send_photo(INSPECTOR, chat_id=TOWN_GROUP, image=photo, caption="#问题 河边有人露天焚烧垃圾")
    card = await h.wait_for(TOWN_GROUP, mark, "已登记为问题")
    first_code = _problem_code(card)
    menu = await h.press(ADMIN, card, "交办")
    menu = await h.press(ADMIN, menu, "✓ 东桥镇")
    mark = sb.mark()
    await h.press_answer(ADMIN, menu, menu.buttons[0][0])
    task = await h.wait_for(LIAISON, mark, "交办给您单位")

    async def rectify(note: str) -> None:
        await h.press(LIAISON, task, "提交整改")
        m = sb.mark()
        sb.send_photo(LIAISON)
        received = await h.wait_for(LIAISON, m, "已收到照片")
        await h.press(LIAISON, received, "完成")
        await h.say(LIAISON, note)

    mark = sb.mark()
    await rectify("已清理焚烧点")
    check = await h.wait_for(INSPECTOR, mark, "请核查")
    await h.press_answer(INSPECTOR, check, "不通过")
    await h.wait_for(INSPECTOR, mark, "不通过的原因")
    mark = sb.mark()
    await h.say(INSPECTOR, "河岸仍有残留垃圾")
    task = await h.wait_for(LIAISON, mark, "核查不通过")
    mark = sb.mark()
    await rectify("残留垃圾已全部清运")
    check = await h.wait_for(INSPECTOR, mark, "请核查")
    mark = sb.mark()
    await h.press_answer(INSPECTOR, check, "通过（销号）")
    await h.wait_for(TOWN_GROUP, mark, "已整改销号")

    mark = sb.mark()
    sb.send_photo(VOLUNTEER, chat_id=TOWN_GROUP, image=photo, caption="#问题 这里有人烧垃圾")
    duplicate = await h.wait_for(TOWN_GROUP, mark, "可能重复")
    menu = await h.press(ADMIN, duplicate, "不予受理")
    mark = sb.mark()
    await h.press_answer(ADMIN, menu, "重复上报")
    await h.wait_for(TOWN_GROUP, mark, "不予受理")

    step = await h.reply_to(VOLUNTEER, "/report")
    step = await h.press(VOLUNTEER, step, "农村生活污水")
    mark = sb.mark()
    sb.send_photo(VOLUNTEER)
    received = await h.wait_for(VOLUNTEER, mark, "已收到照片")
    await h.press(VOLUNTEER, received, "完成")
    await h.say(VOLUNTEER, PRIVATE_REPORT)
    mark = sb.mark()
    sb.send_location(VOLUNTEER, *RIVERSIDE)
    step = await h.wait_for(VOLUNTEER, mark, "第5步")
    confirm = await h.press(VOLUNTEER, step, "东桥村")
    await h.press(VOLUNTEER, confirm, "✅ 提交")
    mark = sb.mark()
    sb.send_text(ADMIN, f"/issue {first_code}")
    await h.wait_for(ADMIN, mark, "处理记录")


async def play_reminders(h: Harness) -> None:
    """A report assigned with its category's deadline is left undone. The clock moves to 09:00
    four days after the deadline: the morning job writes the reminders into the outbox and the
    sender delivers them: one private message to the liaison (with a button to open the
    problem), the overdue list in both groups with the liaison mentioned, and the escalation to
    the leader. /remind then finds nothing new to write: each is sent once a day."""
    sb = h.sb
    sb.add_user(LEADER, "郑区长")
    await h.say(LEADER, f"/start {_code(await h.reply_to(ADMIN, '/invite leader NH'))}")
    mark = sb.mark()
    sb.send_photo(INSPECTOR, chat_id=TOWN_GROUP, caption="#问题 路边焚烧秸秆")
    card = await h.wait_for(TOWN_GROUP, mark, "已登记为问题")
    menu = await h.press(ADMIN, card, "交办")
    menu = await h.press(ADMIN, menu, "✓ 东桥镇")
    mark = sb.mark()
    await h.press_answer(ADMIN, menu, menu.buttons[0][0])  # the category's default deadline
    await h.wait_for(TOWN_GROUP, mark, "已交办给东桥镇")  # the last of the notices

    found = re.search(r"[A-Z]+-\d{4}-\d{4}", card.content)
    assert found is not None, card.content
    code = found.group(0)
    async with h.db.begin() as session:
        problem = await problems.problem_by_code(session, code)
    assert problem is not None and problem.deadline is not None
    deadline_day = h.services.local(problem.deadline).date()
    h.clock.fixed = datetime.combine(
        deadline_day + timedelta(days=4), time(9), h.services.settings.zone
    )
    h.clock.offset = timedelta()
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(reminders.JOB_NAME)
    mark = sb.mark()
    await job.run(h.app)  # as the scheduler runs it at 09:00
    reminder = await h.wait_for(LIAISON, mark, "今日提醒")
    await h.wait_for(TOWN_GROUP, mark, "超期问题通报")
    await h.wait_for(GROUP, mark, "超期问题通报")
    await h.wait_for(LEADER, mark, "超期超过")
    await h.press(LIAISON, reminder, reminder.buttons[0][0])
    await h.say(ADMIN, "/remind")


async def play_points(h: Harness) -> None:
    """The volunteer earns: the private report is assigned (+2), an activity claim is approved
    by the village's cadre (+5); checks /points; spends at the village's shop with a code."""
    sb = h.sb
    card = next(  # the admins' card of the volunteer's private report
        m for m in reversed(sb.sent(ADMIN)) if PRIVATE_REPORT in m.content and m.buttons
    )
    menu = await h.press(ADMIN, card, "交办")
    menu = await h.press(ADMIN, menu, "✓ 东桥镇")
    mark = sb.mark()
    await h.press_answer(ADMIN, menu, menu.buttons[0][0])
    await h.wait_for(VOLUNTEER, mark, "积分变动")

    step = await h.reply_to(VOLUNTEER, "/claim")
    step = await h.press(VOLUNTEER, step, "清理 +5")
    mark = sb.mark()
    sb.send_photo(VOLUNTEER)
    await h.wait_for(VOLUNTEER, mark, "第3步")
    mark = sb.mark()
    await h.say(VOLUNTEER, "周六上午清理河道垃圾三袋")
    claim = await h.wait_for(CADRE, mark, "活动申报 #1")
    mark = sb.mark()
    await h.press_answer(CADRE, claim, "✅ 通过")
    await h.wait_for(VOLUNTEER, mark, "已通过")
    await h.say(VOLUNTEER, "/points")

    sb.add_user(SHOP, "东桥超市")
    await h.say(SHOP, f"/start {_code(await h.reply_to(ADMIN, '/invite shop NH-DQ-01'))}")
    mark = sb.mark()
    sb.send_text(VOLUNTEER, "/redeem")
    code = await h.wait_for(VOLUNTEER, mark, "兑换码：")
    digits = code.content.split("兑换码：", 1)[1][:6]
    mark = sb.mark()
    await h.say(SHOP, f"/checkout {digits} 5")
    await h.wait_for(VOLUNTEER, mark, "兑换了 5 积分")
    await h.say(SHOP, f"/checkout {digits} 5")  # the same code again: refused
    await h.say(SHOP, "/shop today")


async def _intake_summary(h: Harness) -> str:
    """Every update of the scene went through the inbox: how many, and how they ended."""
    assert h.runtime is not None
    for _ in range(50):  # the last reply goes out just before its update is marked done
        async with h.db.begin() as session:
            counts = dict(
                (
                    await session.execute(
                        select(models.InboxUpdate.status, func.count()).group_by(
                            models.InboxUpdate.status
                        )
                    )
                ).all()
            )
        if not counts.get("pending"):
            break
        await asyncio.sleep(0.1)
    status, health = await h.runtime.web.health()
    return (
        f"inbox: {sum(counts.values())} updates stored before Telegram was told, "
        f"{counts.get('done', 0)} done, {counts.get('pending', 0)} still running, "
        f"{counts.get('parked', 0)} parked; /healthz {status} {health['status']}"
    )


async def run_demo(out: Path, *, speed: float = 0.1) -> int:
    logging.getLogger("telegram").setLevel(logging.WARNING)
    logging.getLogger("greengrid").setLevel(logging.WARNING)
    # A fresh scene each time: the demo's database lives in the output folder.
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    async with running_bot(
        f"sqlite+aiosqlite:///{out / 'demo.db'}",
        admin_ids=[ADMIN],
        speed=speed,
        media_dir=out / "media",
        rules_file=EXAMPLE_RULES,
    ) as h:
        await play(h, out)
        transcript = h.sb.transcript()
        violations = h.sb.limit_violations()
        intake = await _intake_summary(h)
        summary = (
            f"stand-in: {len(h.sb.request_log)} Bot API calls, {h.sb.count_429} answered 429, "
            + ("Telegram's limits held" if not violations else f"LIMITS BROKEN: {violations}")
            + f"\n{intake}"
        )
    (out / "transcript.txt").write_text(transcript + "\n", encoding="utf-8")
    print(transcript)
    print(f"\n{summary}\n(transcript saved to {out / 'transcript.txt'})")
    return 0 if not violations else 1


# More of 南湖区's towns and streets, so that the ranking has thirds to colour.
MORE_SUBJECTS = [
    ("NH-FQ", "凤桥镇"),
    ("NH-YX", "余新镇"),
    ("NH-XF", "新丰镇"),
    ("NH-QX", "七星街道"),
    ("NH-DZ", "东栅街道"),
]
# Each town's record before the first Monday, as (town, days to rectify, submitted by the
# deadline?) per closed problem, and how many are still open past their deadline.
HISTORY: dict[str, tuple[list[tuple[int, bool]], int]] = {
    "NH-DQ": ([(2, True), (4, True), (3, True)], 0),
    "NH-XS": ([(6, True), (9, False)], 1),
    "NH-BH": ([(5, True)], 2),
    "NH-FQ": ([(3, True), (2, True), (1, True), (5, False)], 0),
    "NH-YX": ([(8, False), (10, False)], 1),
    "NH-XF": ([(4, True), (6, True)], 0),
    "NH-QX": ([(2, True)], 0),
    "NH-DZ": ([], 0),
}


def _next_monday(now: datetime, zone: tzinfo) -> datetime:
    """The next Monday 09:00 (local) after ``now``."""
    local = now.astimezone(zone)
    days = (7 - local.weekday()) % 7 or 7
    monday = datetime.combine(local.date() + timedelta(days=days), time(9, 0), local.tzinfo)
    return monday.astimezone(UTC)


class _Seeder:
    """Past problems made through the real services at chosen moments (the weeks before)."""

    def __init__(self, h: Harness, admin_pid: int, reporter_pid: int) -> None:
        self.h, self.admin, self.reporter = h, admin_pid, reporter_pid
        self.n = 0

    async def problem(
        self,
        town_id: int,
        assigned: datetime,
        deadline_days: int,
        *,
        rectify_days: int | None = None,
        closed: bool = True,
    ) -> str:
        self.n += 1
        zone = self.h.services.settings.zone
        async with self.h.db.begin() as session:
            made = await problems.report_problem(
                session,
                ReportIn(
                    reporter_id=self.reporter,
                    category="road_dust",
                    description=f"道路扬尘（往期记录 {self.n}）",
                    photos=[PhotoIn(f"demo-history-{self.n}", f"demo-history-u{self.n}")],
                    source_chat_id=None,
                    source_key=None,
                    address=f"示例路 {self.n} 号",
                ),
                now=assigned - timedelta(hours=2),
                code_prefix=self.h.services.rules.problem_code_prefix,
                zone_year=assigned.astimezone(zone).year,
            )
            code = made.problem.code
            steps: list[tuple[Action, datetime, dict[str, object]]] = [
                (Action.assign, assigned,
                 {"subject_id": town_id, "deadline": assigned + timedelta(days=deadline_days)}),
            ]  # fmt: skip
            if rectify_days is not None:
                photo = PhotoIn(f"demo-after-{self.n}", f"demo-after-u{self.n}")
                submitted = assigned + timedelta(days=rectify_days)
                steps.append((Action.submit, submitted, {"after_photos": [photo]}))
                if closed:
                    steps.append((Action.pass_check, submitted + timedelta(hours=20), {}))
            for action, at, extra in steps:
                done = await problems.transition(session, code, action, self.admin, now=at, **extra)  # type: ignore[arg-type]
                if done is None or isinstance(done, str):
                    raise RuntimeError(f"demo history: {code} {action}: {done}")
        return code


async def play_summary(h: Harness, at: datetime) -> None:
    """Monday 08:30: the leaders' summary of the week just ended goes to the leader privately
    through the outbox: the ranking chart with the week's figures against the week before, then
    the red towns and why, the longest-overdue problems with their liaisons (a button opens
    each) and the volunteers' week. The leader opens the first problem."""
    h.clock.fixed = at
    assert h.app.job_queue is not None
    (job,) = h.app.job_queue.get_jobs_by_name(leader_summary.WEEKLY.name)
    mark = h.sb.mark()
    await job.run(h.app)  # as the scheduler runs it at 08:30
    details = await h.wait_for(LEADER, mark, "超期最久", timeout=20)
    if details.buttons:
        await h.press(LEADER, details, details.buttons[0][0])


async def play_announcement(h: Harness) -> None:
    """An admin queues a typical case (典型案例) for every bound group at 18:00: the preview,
    the confirmation, the list with its cancel button; at 18:00 the schedule's tick releases it
    to both groups."""
    sb = h.sb
    menu = await h.reply_to(ADMIN, "/announce")
    await h.press(ADMIN, menu, menu.buttons[0][0])  # all bound groups
    await h.say(ADMIN, ANNOUNCEMENT)
    _preview, question = await h.say(ADMIN, "18:00", n=2)
    mark = sb.mark()
    sb.press(ADMIN, question, text="✅ 确认发布")
    await h.wait_for(ADMIN, mark, "已排队")
    await h.say(ADMIN, "/announcements")
    local = h.services.local(h.services.now())
    h.clock.fixed = datetime.combine(local.date(), time(18, 0), local.tzinfo)
    assert h.app.job_queue is not None
    (tick,) = h.app.job_queue.get_jobs_by_name(schedule.TICK_JOB)
    mark = sb.mark()
    await tick.run(h.app)  # the schedule's tick, every half minute
    await h.wait_for(GROUP, mark, "典型案例")
    await h.wait_for(TOWN_GROUP, mark, "典型案例")


async def play_ranking(h: Harness, out: Path) -> None:
    """Two Mondays of 晾晒: the weekly job posts to both groups through the outbox (the job
    fires twice the first time and still posts once); in between, towns close problems and one
    lets a deadline pass; the second post shows each town's move. Then /rank in the town's
    group, and the admin exports the ledger (its progress edits one message)."""
    sb, services = h.sb, h.services
    zone = services.settings.zone
    async with h.db.begin() as session:
        await import_org(
            session, [AreaSpec(AreaKind.subject, c, n, "NH") for c, n in MORE_SUBJECTS]
        )
        towns = {a.code: a.id for a in (await session.scalars(select(Area))).all()}
        admin = await people.person_id_for(session, ADMIN)
        reporter = await people.person_id_for(session, VOLUNTEER)
    assert admin is not None and reporter is not None
    seeder = _Seeder(h, admin, reporter)
    first_monday = _next_monday(services.now(), zone)
    start = first_monday - timedelta(days=40)
    for town, (closed, overdue) in HISTORY.items():
        for i, (days, on_time) in enumerate(closed):
            deadline = days + 1 if on_time else max(1, days - 3)
            await seeder.problem(
                towns[town], start + timedelta(days=3 * i), deadline, rectify_days=days
            )
        for i in range(overdue):
            await seeder.problem(towns[town], start + timedelta(days=20 + i), 7 + 2 * i)

    async def monday(at: datetime, fire: int) -> list[SentMessage]:
        h.clock.fixed = at
        mark = sb.mark()
        assert h.app.job_queue is not None
        for _ in range(fire):  # as after a restart, or in a second process: still one post
            h.app.job_queue.run_once(weekly_ranking, 0)
        await h.wait_for(GROUP, mark, "晾晒排名", timeout=20)
        await h.wait_for(TOWN_GROUP, mark, "晾晒排名", timeout=20)
        return [m for m in sb.sent(GROUP) if m.seq > mark and m.photo]

    await monday(first_monday, fire=2)
    # The week between: 北湖 closes two new problems within days, 东栅 gets its first and
    # closes it, 余新 lets a new one pass its deadline.
    week = first_monday + timedelta(days=1)
    await seeder.problem(towns["NH-BH"], week, 5, rectify_days=1)
    await seeder.problem(towns["NH-BH"], week, 5, rectify_days=2)
    await seeder.problem(towns["NH-DZ"], week, 3, rectify_days=1)
    await seeder.problem(towns["NH-YX"], week - timedelta(days=1), 2)
    await play_summary(h, first_monday + timedelta(days=7) - timedelta(minutes=30))
    posts = await monday(first_monday + timedelta(days=7), fire=1)
    chart = sb.file_for(posts[-1].photo[-1])
    if chart is not None:
        (out / "ranking.png").write_bytes(chart.data)

    await h.say(LIAISON, "/rank", chat_id=TOWN_GROUP)
    mark = sb.mark()
    sb.send_text(ADMIN, "/export")
    ledger = await h.wait_for(ADMIN, mark, "台账 ·", timeout=30)
    await h.wait_for(ADMIN, mark, "✅")
    if ledger.document is not None:
        stored = sb.file_for(ledger.document["file_id"])
        if stored is not None:
            (out / "ledger.xlsx").write_bytes(stored.data)
    await play_announcement(h)
