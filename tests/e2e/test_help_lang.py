"""/help per role, /lang, and the command menus per language and scope."""

from bot.harness import Harness
from tests.e2e.conftest import ADMIN, GROUP, STRANGER
from tests.e2e.helpers import invite_code

RANK_EN = "The ranking of towns and streets"


async def test_help_per_role(bot: Harness) -> None:
    admin = (await bot.reply_to(ADMIN, "/help")).content or ""
    assert "/invite" in admin and "/bindgroup" in admin and "管理员" in admin
    stranger = (await bot.reply_to(STRANGER, "/help")).content or ""
    assert "/invite" not in stranger and "/bindgroup" not in stranger and "还没有身份" in stranger
    code = invite_code((await bot.reply_to(ADMIN, "/invite cadre NH-DQ-01")).content)
    await bot.reply_to(3001, f"/start {code}")
    cadre = (await bot.reply_to(3001, "/help")).content or ""
    assert "/invite" in cadre and "/bindgroup" not in cadre and "包村干部（东桥村）" in cadre
    in_group = (await bot.reply_to(ADMIN, "/help", chat_id=GROUP)).content or ""
    assert "/bindgroup" in in_group and "/invite" not in in_group


async def test_lang_switches_per_person(bot: Harness) -> None:
    chooser = await bot.reply_to(STRANGER, "/lang")
    assert chooser.buttons == [["中文", "English"]]
    done = await bot.press(STRANGER, chooser, "English")
    assert done.content == "Language set to English."
    english = (await bot.reply_to(STRANGER, "/help")).content or ""
    assert "What you can do" in english and "/lang — Change language" in english
    # Someone else still gets Chinese.
    assert "可用功能" in ((await bot.reply_to(ADMIN, "/help")).content)
    assert "已切换为中文" in ((await bot.reply_to(STRANGER, "/lang zh")).content)
    assert "Unknown language" not in ((await bot.reply_to(STRANGER, "/lang fr")).content)
    assert "不支持该语言" in ((await bot.reply_to(STRANGER, "/lang fr")).content)


def _names(commands: list[dict[str, str]]) -> list[str]:
    return [c["command"] for c in commands]


async def test_command_menus_per_language_and_scope(bot: Harness) -> None:
    menu = bot.sb.commands
    private_zh = menu({"type": "all_private_chats"}, "zh")
    private_en = menu({"type": "all_private_chats"}, "en")
    assert _names(private_zh) == ["start", "help", "lang"]  # joining comes first
    assert private_zh[1]["description"] == "查看可用功能"
    assert private_en[1]["description"] == "What I can do for you"
    groups_zh = menu({"type": "all_group_chats"}, "zh")
    groups_en = menu({"type": "all_group_chats"}, "en")
    assert _names(groups_zh) == _names(groups_en) == ["help", "report", "issue", "rank"]
    assert [c["description"] for c in groups_en] == [
        "What I can do for you",
        "Report a problem",
        "Show a problem",
        RANK_EN,
    ]
    admins_en = menu({"type": "all_chat_administrators"}, "en")
    assert _names(admins_en) == [
        *("bindgroup", "help", "report", "issue", "issues", "rank", "leaderboard")
    ]
    assert admins_en[0]["description"] == "Bind this group to the district or a town"
    # The configured admin had not opened the bot at start-up, so Telegram refused their menu;
    # their /start sets it, in both languages.
    admin_chat = {"type": "chat", "chat_id": ADMIN}
    assert menu(admin_chat, "zh") == []
    await bot.reply_to(ADMIN, "/start")
    assert "invite" in _names(menu(admin_chat, "zh"))
    admin_en = {c["command"]: c["description"] for c in menu(admin_chat, "en")}
    assert admin_en["invite"] == "Make an invite link" and admin_en["remind"]
    # A liaison's own menu gains /rectified (and /issues) when they join.
    code = invite_code((await bot.reply_to(ADMIN, "/invite liaison NH-DQ")).content)
    await bot.reply_to(2001, f"/start {code}")
    liaison = _names(menu({"type": "chat", "chat_id": 2001}, "zh"))
    assert liaison == [
        *("start", "help", "lang", "report", "issue", "cancel"),
        *("issues", "rectified", "rank"),
    ]
