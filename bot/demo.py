"""`make demo`: the real application against the local Telegram stand-in, playing a scene.

The scene: an admin from ADMIN_IDS sets up, invites a liaison with buttons and a cadre in one
line, the cadre invites a volunteer, a used-up link is refused, the bot joins the work group and
is bound to the district (a stranger's attempt is refused), /help in Chinese and in English.
The transcript is printed and saved to demo-out/transcript.txt.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
from pathlib import Path

from sqlalchemy import func, select

import models
from bot.harness import Harness, running_bot
from bot.sandbox import SentMessage, tiny_png
from bot.services.org import import_org, parse_org_file

EXAMPLE_ORG = Path(__file__).resolve().parent.parent / "examples" / "org.yaml"
LINK = re.compile(r"start=([A-Za-z0-9_-]+)")

ADMIN, LIAISON, CADRE, VOLUNTEER, LATECOMER, STRANGER = 1001, 2001, 3001, 4001, 4002, 6666
INSPECTOR = 2101
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
    ) as h:
        await play(h)
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
