"""Bad input gets a clear reply, changes nothing, and never stops the bot."""

import pytest

from bot.harness import Harness
from bot.sending.ratelimit import ChatRateLimiter
from tests.e2e.conftest import ADMIN, GROUP, STRANGER
from tests.e2e.helpers import table_counts


@pytest.fixture
async def known_stranger(bot: Harness) -> Harness:
    await bot.reply_to(STRANGER, "/start")  # the stranger's person row exists from here on
    return bot


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/frobnicate", "没有这个命令"),
        ("/INVITE@someoneelse", "没有这个命令"),
        ("hello there", "没看懂"),
        ("字" * 10_000, "没看懂"),
        ("\u202egnp.exe \u200b\u200d\ufeff 🧪🏳️‍🌈 \U0001d54f", "没看懂"),
        ("/start@greengrid_bot", "还没有身份"),
        ("/invite", "只有管理员或包村干部"),
        ("/bindgroup", "工作群里"),
        ("/lang 𝕖𝕟", "不支持该语言"),
    ],
)
async def test_private_bad_input(known_stranger: Harness, text: str, says: str) -> None:
    bot = known_stranger
    before = await table_counts(bot)
    reply = await bot.reply_to(STRANGER, text)
    assert says in reply.content
    assert await table_counts(bot) == before


async def test_group_noise_is_ignored_and_addressed_commands_answered(
    known_stranger: Harness,
) -> None:
    bot = known_stranger
    await bot.reply_to(STRANGER, "/help", chat_id=GROUP)  # the group is known from here on
    before = await table_counts(bot)
    already = len(bot.sb.sent(GROUP))
    mark = bot.sb.mark()
    bot.sb.send_text(STRANGER, "大家好", chat_id=GROUP)
    bot.sb.send_text(STRANGER, "/otherbotcommand", chat_id=GROUP)
    bot.sb.send_text(STRANGER, "/start", chat_id=GROUP)  # answered: use it in private
    replies = await bot.sb.wait_messages(GROUP, n=1, since=mark)
    assert "私聊" in replies[0].content
    addressed = await bot.reply_to(STRANGER, "/nonsense@greengrid_bot", chat_id=GROUP)
    assert "没有这个命令" in addressed.content
    # Only the two answers above: the chatter and the other bot's command got none.
    assert [m.content for m in bot.sb.sent(GROUP)[already:]] == [
        replies[0].content,
        addressed.content,
    ]
    assert await table_counts(bot) == before


@pytest.mark.parametrize(
    "data", ["inv:r:admin:0", "inv:zz", "bind:999999", "lang:xx", "garbage", ""]
)
async def test_stale_or_forged_buttons(known_stranger: Harness, data: str) -> None:
    bot = known_stranger
    menu = await bot.reply_to(ADMIN, "/lang")
    before = await table_counts(bot)
    answer = await bot.press_answer(STRANGER, menu, data=data)
    assert "失效" in answer or "只有" in answer
    assert await table_counts(bot) == before


async def test_a_failing_update_does_not_stop_the_bot(known_stranger: Harness) -> None:
    bot = known_stranger
    # The reply to this /help fails on every try (Telegram answers 502, the limiter's retries
    # included): the update runs INBOX_MAX_ATTEMPTS times and is parked; the person gets one
    # apology in their language (at the last try, not at each), and the bot carries on.
    limiter = bot.app.bot.rate_limiter
    assert isinstance(limiter, ChatRateLimiter)
    tries = bot.services.settings.inbox_max_attempts
    limiter.backoff_base_s = 0.05  # the limiter's own network retries, quickly
    bot.sb.inject_faults("5xx", count=(limiter.max_retries + 1) * tries, chat_id=STRANGER)
    apology = await bot.reply_to(STRANGER, "/help", timeout=30)
    assert apology.content == "抱歉，出了点问题，请稍后再试。我们已记录此错误。"
    assert "可用功能" in ((await bot.reply_to(ADMIN, "/help")).content)
    assert "可用功能" in ((await bot.reply_to(STRANGER, "/help")).content)
    apologies = [m for m in bot.sb.sent(STRANGER) if m.content == apology.content]
    assert len(apologies) == 1
