"""Bad input gets a clear reply, changes nothing, and never stops the bot."""

import pytest
from sqlalchemy import func, select

import models
from bot.harness import Harness
from bot.sandbox import SentMessage, tiny_png
from bot.sandbox.faults import FaultKind
from bot.sending.ratelimit import ChatRateLimiter
from bot.services import people, problems
from bot.services.problems import PhotoIn, ReportIn
from bot.services.roles import Role
from tests.e2e.conftest import ADMIN, GROUP, STRANGER
from tests.e2e.helpers import grant, table_counts


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


async def _problem_by(bot: Harness, telegram_id: int, key: str) -> str:
    """A problem reported by ``telegram_id`` (as from a group photo), for the stranger to try."""
    now = bot.services.now()
    photo = bot.sb.store_file(tiny_png(len(key) + telegram_id), "photos", ".jpg")
    async with bot.db.begin() as session:
        person = await people.ensure_person(session, telegram_id, str(telegram_id), None)
        result = await problems.report_problem(
            session,
            ReportIn(
                person.id, "noise", "", [PhotoIn(photo.file_id, photo.file_unique_id)], GROUP, key
            ),
            now=now,
            code_prefix="NH",
            zone_year=problems.code_year(now, bot.services.settings.zone),
        )
    return result.problem.code


async def test_a_stranger_may_not_report_privately_list_or_look(known_stranger: Harness) -> None:
    """Without a role: no private /report (and no admin hears of it), no /issues, no other
    people's problems; a stranger's own group report stays visible to them."""
    bot = known_stranger
    await bot.reply_to(ADMIN, "/start")
    others = await _problem_by(bot, ADMIN, "m:1")
    own = await _problem_by(bot, STRANGER, "m:2")
    before = await table_counts(bot)
    mark = bot.sb.mark()
    assert "需要先加入" in (await bot.reply_to(STRANGER, "/report")).content
    assert "只有管理员、分管领导" in (await bot.reply_to(STRANGER, "/issues")).content
    refused = await bot.reply_to(STRANGER, f"/issue {others}")
    assert f"只有已加入的成员和上报人可以查看 {others}" in refused.content
    m = bot.sb.mark()
    bot.sb.send_text(STRANGER, f"/issue {own}")
    assert own in (await bot.wait_for(STRANGER, m, "处理记录")).content
    assert [m for m in bot.sb.sent(ADMIN) if m.seq > mark] == []  # no admin was told anything
    menu: SentMessage = await bot.reply_to(ADMIN, "/lang")
    for data in ("ls:0:", "ls:1:status=reported"):
        assert "只有管理员、分管领导" in await bot.press_answer(STRANGER, menu, data=data)
    m = bot.sb.mark()
    bot.sb.press(STRANGER, menu, data=f"p:show:{others}")
    assert "只有已加入的成员" in (await bot.wait_for(STRANGER, m, others)).content
    assert await table_counts(bot) == before


@pytest.mark.parametrize(("kind", "status"), [("5xx", 502), ("drop", 0)])
async def test_a_reply_survives_two_network_faults_and_arrives_once(
    known_stranger: Harness, kind: FaultKind, status: int
) -> None:
    """Telegram answers 502, or the connection drops, twice: the limiter retries, the reply
    arrives, and only once (neither fault does the call)."""
    bot = known_stranger
    bot.sb.inject_faults(kind, count=2, method="sendMessage", chat_id=STRANGER)
    mark = bot.sb.mark()
    reply = await bot.reply_to(STRANGER, "/help", timeout=20)
    assert "可用功能" in reply.content
    await bot.reply_to(ADMIN, "/help")  # a later update handled: nothing else is on its way
    assert [m.content for m in bot.sb.sent(STRANGER) if m.seq > mark] == [reply.content]
    tries = [
        r.status for r in bot.sb.request_log if r.method == "sendMessage" and r.chat_id == STRANGER
    ]
    assert tries[-3:] == [status, status, 200]


HUGE = "9" * 20  # no 64-bit column holds it


async def test_forged_numbers_in_buttons_are_stale_not_a_crash(known_stranger: Harness) -> None:
    """Numbers in button data that ``int`` refuses although ``isdigit`` accepts them ("²"), or
    that no database column holds: each tap is answered as outdated or refused, nothing fails
    (before, each one failed three times and was parked), nothing changes."""
    bot = known_stranger
    menu = await bot.reply_to(ADMIN, "/help")
    group_menu = await bot.reply_to(ADMIN, "/help", chat_id=GROUP)
    before = await table_counts(bot)
    taps = [
        (STRANGER, menu, "cl:ok:²"),
        (STRANGER, menu, f"cl:no:{HUGE}"),
        (ADMIN, menu, "pk:²"),
        (ADMIN, menu, f"pk:{HUGE}"),
        (ADMIN, menu, f"ls:{HUGE}:"),
        (ADMIN, menu, f"ls:0:subject_id={HUGE}"),
        (ADMIN, menu, f"inv:u:volunteer:{HUGE}:0"),
        (ADMIN, menu, "an:c:²"),
        (ADMIN, menu, f"an:c:{HUGE}"),
        (ADMIN, menu, f"p:asg:NH-2026-0001:{HUGE}"),
        (ADMIN, menu, f"p:asg:NH-2026-0001:{HUGE}:7"),
        (ADMIN, group_menu, f"bind:{HUGE}"),
    ]
    for who, message, data in taps:
        answer = await bot.press_answer(who, message, data=data)
        assert answer and "出了点问题" not in answer, (data, answer)
    for uses in (HUGE, "-1"):  # an invite for more people than a database number holds
        usage = await bot.reply_to(ADMIN, f"/invite volunteer NH-DQ-01 {uses}")
        assert "/invite" in usage.content and "出了点问题" not in usage.content
    async with bot.db.begin() as session:
        failed = await session.scalar(
            select(func.count())
            .select_from(models.InboxUpdate)
            .where(models.InboxUpdate.last_error.is_not(None))
        )
    assert failed == 0
    assert await table_counts(bot) == before


async def test_forged_village_buttons_in_a_private_report(known_stranger: Harness) -> None:
    """At the village step of a private /report, forged village or page data is outdated; the
    real buttons still work after it."""
    bot = known_stranger
    await grant(bot, 4001, Role.volunteer, "NH-DQ-01")
    step = await bot.reply_to(4001, "/report")
    step = await bot.press(4001, step, "露天焚烧")
    mark = bot.sb.mark()
    bot.sb.send_photo(4001)
    received = (await bot.sb.wait_messages(4001, since=mark))[0]
    await bot.press(4001, received, "完成")
    await bot.reply_to(4001, "河边有人烧垃圾")
    villages = await bot.reply_to(4001, "东桥村口")  # an address typed: the village comes next
    assert any("东桥村" in row for row in villages.buttons)
    for data in ("d:vil:x", f"d:vil:{HUGE}", "d:vil:²", "d:vp:x", f"d:vp:{HUGE}"):
        assert "失效" in await bot.press_answer(4001, villages, data=data), data
    assert "确认" in (await bot.press(4001, villages, "东桥村")).content
