"""The simulated world behaves like Telegram where bots commonly get it wrong."""

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from bot.limits import RateWindow, TelegramLimits
from bot.sandbox import Sandbox
from bot.sandbox.gen_facts import derive
from bot.sandbox.ratecheck import LoggedRequest, violations
from tests.sandbox.conftest import TOKEN, call


async def updates(http: aiohttp.ClientSession, sb: Sandbox) -> list[dict[str, Any]]:
    _, body = await call(http, sb, "getUpdates", timeout=0)
    result: list[dict[str, Any]] = body["result"]
    if result:  # confirm them, as a bot would
        await call(http, sb, "getUpdates", offset=result[-1]["update_id"] + 1, timeout=0)
    return result


async def test_privacy_mode_hides_group_chatter(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await updates(http, sb)
    await call(http, sb, "sendMessage", chat_id=-10, text="bot says")
    said = sb.sent(-10)[0]
    sb.send_text(2, "大家好", chat_id=-10)
    sb.send_text(2, "/help", chat_id=-10)
    sb.send_text(2, "/help@otherbot", chat_id=-10)
    sb.send_text(2, "/help@greengrid_bot", chat_id=-10)
    sb.send_text(2, "回复", chat_id=-10, reply_to=said.message_id)
    sb.send_photo(2, chat_id=-10, caption="#问题 河边垃圾")
    got = [u["message"].get("text") for u in await updates(http, sb)]
    assert got == ["/help", "/help@greengrid_bot", "回复"]
    assert "大家好  (not delivered: privacy mode)" in sb.transcript()
    sb.chats[-10].bot_is_admin = True  # an admin bot sees everything
    sb.send_photo(2, chat_id=-10, caption="#问题 河边垃圾")
    [update] = await updates(http, sb)
    caption_entities = update["message"]["caption_entities"]
    assert caption_entities == [{"type": "hashtag", "offset": 0, "length": 3}]


async def test_entities_count_utf16(sb: Sandbox) -> None:
    message = sb.send_text(1, "😀 /start@greengrid_bot @someone #标签")
    assert [(e["type"], e["offset"], e["length"]) for e in message["entities"]] == [
        ("bot_command", 3, 20),
        ("mention", 24, 8),
        ("hashtag", 33, 3),
    ]


@pytest.mark.parametrize(
    ("text", "mode", "error"),
    [
        ("a < b", "HTML", 'Unsupported start tag "" at byte offset 2'),
        ("<b>bold", "HTML", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<blink>x</blink>", "HTML", 'Unsupported start tag "blink" at byte offset 0'),
        ("v1.0", "MarkdownV2", "Character '.' is reserved"),
        ("*bold", "MarkdownV2", "Can't find end of Bold entity at byte offset 0"),
    ],
)
async def test_malformed_markup_is_refused(
    sb: Sandbox, http: aiohttp.ClientSession, text: str, mode: str, error: str
) -> None:
    status, body = await call(http, sb, "sendMessage", chat_id=1, text=text, parse_mode=mode)
    assert status == 400 and body["description"].startswith("Bad Request: can't parse entities")
    assert error in body["description"]
    assert "sendMessage: Bad Request: can't parse entities" in sb.transcript()


async def test_markup_is_stripped_and_limits_count_plain_text(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, _ = await call(
        http, sb, "sendMessage", chat_id=-10, parse_mode="HTML", text="<b>" + "x" * 4096 + "</b>"
    )
    assert status == 200
    status, _ = await call(
        http, sb, "sendMessage", chat_id=-10, parse_mode="HTML", text="<b>粗</b> &lt;3 &amp; a"
    )
    status, _ = await call(
        http, sb, "sendMessage", chat_id=-10, parse_mode="MarkdownV2", text=r"*粗* v1\.0 `a.b`"
    )
    assert [m.text for m in sb.sent(-10)[1:]] == ["粗 <3 & a", "粗 v1.0 a.b"]


async def test_second_poller_terminates_the_first(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await updates(http, sb)
    first = asyncio.create_task(call(http, sb, "getUpdates", timeout=5))
    await asyncio.sleep(0.1)
    status, _ = await call(http, sb, "getUpdates", timeout=0)
    assert status == 200
    status, body = await asyncio.wait_for(first, 2)
    assert status == 409 and "terminated by other getUpdates request" in body["description"]


async def test_webhook_blocks_polling_until_deleted(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, _ = await call(http, sb, "setWebhook", url="https://example.org/hook")
    assert status == 200
    status, body = await call(http, sb, "getUpdates", timeout=0)
    assert status == 409 and "webhook is active" in body["description"]
    _, info = await call(http, sb, "getWebhookInfo")
    assert info["result"]["url"] == "https://example.org/hook"
    assert info["result"]["pending_update_count"] == 1
    await call(http, sb, "deleteWebhook", drop_pending_updates=True)
    assert await updates(http, sb) == []


async def test_callback_queries_expire(http: aiohttp.ClientSession) -> None:
    now = [100.0]
    async with Sandbox(TOKEN, clock=lambda: now[0], limits=None) as sb:
        sb.add_user(1, "甲")
        sb.send_text(1, "/start")
        markup = {"inline_keyboard": [[{"text": "好", "callback_data": "ok"}]]}
        await call(http, sb, "sendMessage", chat_id=1, text="按", reply_markup=markup)
        message = sb.sent(1)[0]
        late = sb.press(1, message, text="好")
        forged = sb.press(1, {"chat": {"id": 1}, "message_id": message.message_id}, data="x")
        now[0] += 16
        status, body = await call(http, sb, "answerCallbackQuery", callback_query_id=late)
        assert status == 400 and "query is too old" in body["description"]
        with pytest.raises(AssertionError, match="no button"):
            sb.press(1, message, text="不存在")
        assert forged != late


async def test_edits_deletes_and_replies(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    user_message = sb.send_text(1, "原话")
    status, body = await call(
        http, sb, "sendMessage", chat_id=1, text="答", reply_parameters={"message_id": 999}
    )
    assert (status, body["description"]) == (400, "Bad Request: message to be replied not found")
    reply = {"message_id": user_message["message_id"]}
    status, body = await call(http, sb, "sendMessage", chat_id=1, text="答", reply_parameters=reply)
    assert body["result"]["reply_to_message"]["text"] == "原话"
    status, body = await call(
        http, sb, "editMessageText", chat_id=1, message_id=user_message["message_id"], text="改"
    )
    assert (status, body["description"]) == (400, "Bad Request: message can't be edited")
    bot_message = sb.sent(1)[0]
    status, _ = await call(http, sb, "deleteMessage", chat_id=1, message_id=bot_message.message_id)
    assert status == 200 and bot_message.deleted
    status, body = await call(
        http, sb, "deleteMessage", chat_id=1, message_id=bot_message.message_id
    )
    assert (status, body["description"]) == (400, "Bad Request: message to delete not found")
    status, body = await call(
        http, sb, "editMessageText", chat_id=1, message_id=bot_message.message_id, text="x"
    )
    assert body["description"] == "Bad Request: message to edit not found"
    transcript = sb.transcript()
    assert '↩ "原话" 答' in transcript and "bot ✗ deleted: 答" in transcript


async def test_membership_changes(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await updates(http, sb)
    sb.remove_bot_from_group(-10, 1)
    status, body = await call(http, sb, "sendMessage", chat_id=-10, text="hi")
    assert (status, body["description"]) == (
        403,
        "Forbidden: bot was kicked from the supergroup chat",
    )
    sb.bot_added_to_group(-10, 1)
    status, _ = await call(http, sb, "sendMessage", chat_id=-10, text="hi")
    assert status == 200
    sb.block_bot(1)
    got = await updates(http, sb)
    kinds = [next(k for k in u if k != "update_id") for u in got]
    assert kinds == ["my_chat_member", "my_chat_member", "message", "my_chat_member"]
    assert got[2]["message"]["new_chat_members"][0]["username"] == "greengrid_bot"
    assert got[3]["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    status, _ = await call(http, sb, "leaveChat", chat_id=-10)
    status, body = await call(http, sb, "sendMessage", chat_id=-10, text="hi")
    assert status == 403 and "not a member" in body["description"]


async def test_chat_lookups_parse_in_ptb_shapes(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    from telegram import ChatFullInfo, ChatMember

    _, body = await call(http, sb, "getChat", chat_id=-10)
    assert ChatFullInfo.de_json(body["result"], None).title == "群"
    _, body = await call(http, sb, "getChatMember", chat_id=-10, user_id=1)
    assert ChatMember.de_json(body["result"], None).status == "creator"
    sb.chats[-10].bot_is_admin = True
    _, body = await call(http, sb, "getChatAdministrators", chat_id=-10)
    statuses = [ChatMember.de_json(m, None).status for m in body["result"]]
    assert statuses == ["creator", "administrator"]
    _, body = await call(http, sb, "getChatMemberCount", chat_id=-10)
    assert body["result"] == 3


async def test_commands_by_scope_and_language(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    scope = {"type": "chat", "chat_id": 1}
    commands = [{"command": "help", "description": "帮助"}]
    await call(http, sb, "setMyCommands", commands=commands, scope=scope, language_code="zh")
    assert sb.commands(scope, "zh") == commands and sb.commands() == []
    status, body = await call(http, sb, "setMyCommands", commands=[{"command": "Bad!"}])
    assert (status, body["description"]) == (400, "Bad Request: BOT_COMMAND_INVALID")
    # One chat's menu needs a chat the bot has: user 2 has never opened the bot.
    for scope in ({"type": "chat", "chat_id": 2}, {"type": "chat_administrators", "chat_id": -99}):
        status, body = await call(http, sb, "setMyCommands", commands=commands, scope=scope)
        assert (status, body["description"]) == (400, "Bad Request: chat not found")
    sb.send_text(2, "/start")
    status, _ = await call(
        http, sb, "setMyCommands", commands=commands, scope={"type": "chat", "chat_id": 2}
    )
    assert status == 200


async def test_albums_from_people(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await updates(http, sb)
    sb.chats[-10].bot_is_admin = True
    parts = await sb.send_album(2, 4, chat_id=-10, caption="#问题 三张", shuffle=True)
    got = [u["message"] for u in await updates(http, sb)]
    assert sorted(m["message_id"] for m in got) == [m["message_id"] for m in parts]
    assert {m["media_group_id"] for m in got} == {parts[0]["media_group_id"]}
    assert [m.get("caption") for m in parts] == ["#问题 三张", None, None, None]
    assert sb.transcript().count("[album ×4]") == 1


async def test_media_group_counts_every_item(http: aiohttp.ClientSession) -> None:
    limits = TelegramLimits(group_chat=RateWindow(20, 60.0))
    async with Sandbox(TOKEN, limits=limits) as sb:
        sb.add_user(1, "甲")
        sb.add_group(-10, "群", members=[1])
        photo = sb.send_photo(1, chat_id=-10)["photo"][-1]["file_id"]
        ten = [{"type": "photo", "media": photo}] * 10
        assert (await call(http, sb, "sendMediaGroup", chat_id=-10, media=ten))[0] == 200
        assert (await call(http, sb, "sendMediaGroup", chat_id=-10, media=ten))[0] == 200
        status, body = await call(http, sb, "sendMessage", chat_id=-10, text="21st")
        assert status == 429 and body["parameters"]["retry_after"] == 60
        assert sb.count_429 == 1 and sb.limit_violations() == []


def test_violations_are_found_in_a_log() -> None:
    log = [LoggedRequest(t, "sendMessage", 5, 200, 1) for t in (0.0, 0.5, 2.0)]
    assert violations(log, TelegramLimits(), 0.02) == [
        "chat 5: 2 messages within 0.500s (limit 1 per 1.0s)"
    ]
    assert violations(log[1:], TelegramLimits(), 0.02) == []


async def test_uploads_must_be_images_and_urls_are_not_fetched(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData({"chat_id": "1"})
    form.add_field("photo", b"not an image", filename="x.jpg", content_type="image/jpeg")
    async with http.post(f"{sb.api_base_url}{TOKEN}/sendPhoto", data=form) as response:
        assert (await response.json())["description"] == "Bad Request: IMAGE_PROCESS_FAILED"
    status, body = await call(http, sb, "sendPhoto", chat_id=1, photo="https://x.example/a.png")
    assert (status, body["description"]) == (400, "Bad Request: failed to get HTTP URL content")


async def test_json_bodies_and_query_strings(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    payload = {"chat_id": -10, "text": "json", "reply_markup": {"inline_keyboard": []}}
    async with http.post(f"{sb.api_base_url}{TOKEN}/sendMessage", json=payload) as response:
        assert response.status == 200
    async with http.get(f"{sb.api_base_url}{TOKEN}/GETME") as response:
        assert (await response.json())["result"]["is_bot"] is True
    status, body = await call(http, sb, "setChatTitle", chat_id=-10, title="新")
    assert (status, body["result"]) == (200, True)  # known to the API, accepted without effect


async def test_fault_rate_is_reproducible(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.fault_rate(0.5, ("5xx",), seed=3, methods=["getMe"])
    first = [(await call(http, sb, "getMe"))[0] for _ in range(8)]
    sb.fault_rate(0.5, ("5xx",), seed=3, methods=["getMe"])
    again = [(await call(http, sb, "getMe"))[0] for _ in range(8)]
    assert first == again and {200, 502} == set(first)
    sb.clear_faults()
    assert (await call(http, sb, "getMe"))[0] == 200


async def test_stalled_answers_end_when_the_sandbox_stops(http: aiohttp.ClientSession) -> None:
    sb = Sandbox(TOKEN, limits=None)
    await sb.start()
    sb.inject_faults("timeout", method="getMe")
    pending = asyncio.create_task(call(http, sb, "getMe"))
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sb.stop()
    assert loop.time() - started < 2  # not the 30 s stall
    # The call was done before the stall; its late answer may or may not make it out.
    await asyncio.gather(pending, return_exceptions=True)


async def test_wait_messages_says_what_was_sent(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.send_text(1, "/ping")
    await call(http, sb, "sendMessage", chat_id=-10, text="elsewhere")
    with pytest.raises(AssertionError, match="expected 1 message"):
        await sb.wait_messages(1, timeout=0.1)


async def test_control_api(http: aiohttp.ClientSession) -> None:
    async with Sandbox(TOKEN, limits=None) as sb:
        root = f"{sb.root_url}/_sandbox"
        await http.post(f"{root}/users", json={"id": 5, "first_name": "王"})
        await http.post(f"{root}/groups", json={"id": -5, "title": "组", "members": [5]})
        async with http.post(f"{root}/send", json={"user_id": 5, "text": "/start"}) as response:
            assert (await response.json())["text"] == "/start"
        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        await call(http, sb, "sendMessage", chat_id=5, text="选", reply_markup=markup)
        async with http.get(f"{root}/messages", params={"chat_id": "5"}) as response:
            [listed] = await response.json()
        assert listed["buttons"] == [["A"]]
        press = {"user_id": 5, "chat_id": 5, "message_id": listed["message_id"], "text": "A"}
        async with http.post(f"{root}/press", json=press) as response:
            assert (await response.json())["callback_query_id"]
        async with http.get(f"{root}/transcript") as response:
            text = await response.text()
        assert "── 王 ⇄ bot ──" in text and "王 ▸ [A]" in text


def test_gen_facts_keeps_names_and_required() -> None:
    api = {
        "version": "Bot API 0",
        "methods": {
            "getMe": {},
            "sendX": {
                "fields": [
                    {"name": "chat_id", "required": True},
                    {"name": "note", "required": False},
                ]
            },
        },
    }
    facts = derive(api)
    assert json.loads(json.dumps(facts))["methods"] == {
        "getMe": {"params": [], "required": []},
        "sendX": {"params": ["chat_id", "note"], "required": ["chat_id"]},
    }


def test_standalone_instructions_name_the_port_in_use() -> None:
    from bot.sandbox.standalone import SANDBOX_TOKEN, instructions

    text = instructions("127.0.0.1", 9099)
    assert "BOT_API_BASE_URL=http://127.0.0.1:9099 " in text and SANDBOX_TOKEN in text
    assert "http://127.0.0.1:9099/_sandbox/send" in text and "8081" not in text
