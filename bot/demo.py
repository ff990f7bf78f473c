"""`make demo`: the real application against the local Telegram stand-in, playing a scene.

The scene: an admin from ADMIN_IDS sets up, invites a liaison with buttons and a cadre in one
line, the cadre invites a volunteer, a used-up link is refused, the bot joins the work group and
is bound to the district (a stranger's attempt is refused), /help in Chinese and in English.
The transcript is printed and saved to demo-out/transcript.txt.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from bot.harness import Harness, running_bot
from bot.sandbox import SentMessage
from bot.services.org import import_org, parse_org_file

EXAMPLE_ORG = Path(__file__).resolve().parent.parent / "examples" / "org.yaml"
LINK = re.compile(r"start=([A-Za-z0-9_-]+)")

ADMIN, LIAISON, CADRE, VOLUNTEER, LATECOMER, STRANGER = 1001, 2001, 3001, 4001, 4002, 6666
GROUP = -1001234567


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
    (out / "transcript.txt").write_text(transcript + "\n", encoding="utf-8")
    print(transcript)
    print(f"\n(transcript saved to {out / 'transcript.txt'})")
    return 0
