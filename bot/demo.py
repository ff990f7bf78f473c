"""`make demo`: the real application against the local Telegram stand-in, playing a scene.

The scene: an admin from ADMIN_IDS sets up, invites a liaison with buttons and a cadre in one
line, the cadre invites a volunteer, a used-up link is refused, the bot joins the work group and
is bound to the district (a stranger's attempt is refused), /help in Chinese and in English;
a problem goes round the whole loop; then another is left undone, the clock moves past its
deadline, and the morning reminders go out: the liaison's, the groups', the leader's.
The transcript is printed and saved to demo-out/transcript.txt.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import datetime, time, timedelta
from pathlib import Path

from bot.harness import Harness, running_bot
from bot.sandbox import SentMessage, tiny_png
from bot.services import problems
from bot.services.org import import_org, parse_org_file
from jobs import reminders

EXAMPLE_ORG = Path(__file__).resolve().parent.parent / "examples" / "org.yaml"
LINK = re.compile(r"start=([A-Za-z0-9_-]+)")

ADMIN, LIAISON, CADRE, VOLUNTEER, LATECOMER, STRANGER = 1001, 2001, 3001, 4001, 4002, 6666
INSPECTOR = 2101
LEADER = 5002
GROUP = -1001234567
TOWN_GROUP = -1001234568
RIVERSIDE = (30.7512, 120.7588)


def _code(message: SentMessage) -> str:
    match = LINK.search(message.text or "")
    if match is None:
        raise RuntimeError(f"the bot sent no invite link: {message.text!r}")
    return match.group(1)


async def play(h: Harness) -> None:
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
    await h.say(VOLUNTEER, "村口水沟有黑臭污水")
    mark = sb.mark()
    sb.send_location(VOLUNTEER, *RIVERSIDE)
    step = await h.wait_for(VOLUNTEER, mark, "第5步")
    confirm = await h.press(VOLUNTEER, step, "东桥村")
    await h.press(VOLUNTEER, confirm, "✅ 提交")
    mark = sb.mark()
    sb.send_text(ADMIN, "/issue NH-2026-0001")
    await h.wait_for(ADMIN, mark, "处理记录")
    await play_reminders(h)


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
    ) as h:
        await play(h)
        transcript = h.sb.transcript()
        violations = h.sb.limit_violations()
        summary = (
            f"stand-in: {len(h.sb.request_log)} Bot API calls, {h.sb.count_429} answered 429, "
            + ("Telegram's limits held" if not violations else f"LIMITS BROKEN: {violations}")
        )
    (out / "transcript.txt").write_text(transcript + "\n", encoding="utf-8")
    print(transcript)
    print(f"\n{summary}\n(transcript saved to {out / 'transcript.txt'})")
    return 0 if not violations else 1
