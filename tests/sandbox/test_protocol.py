"""The stand-in speaks the Bot API over HTTP and refuses what Telegram refuses."""

import asyncio
from typing import Any

import aiohttp
import pytest

from bot.sandbox import Sandbox, tiny_png
from tests.sandbox.conftest import TOKEN, call


async def test_get_me_and_wrong_token(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, sb, "getMe")
    assert status == 200 and body["result"]["username"] == "greengrid_bot"
    assert body["result"]["can_read_all_group_messages"] is False
    status, body = await call(http, sb, "getMe", token="999:WRONG")
    assert (status, body["description"]) == (401, "Unauthorized")


async def test_unknown_method_and_missing_parameter(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await call(http, sb, "sendTelepathy", chat_id=1)
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    status, body = await call(http, sb, "sendMessage", chat_id=1)
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")
    status, body = await call(http, sb, "sendPhoto", chat_id=1)
    assert (status, body["description"]) == (400, "Bad Request: photo is empty")
    status, body = await call(http, sb, "sendmessage", chat_id=1, text="case-insensitive")
    assert status == 200


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"chat_id": 1, "text": "x" * 4097}, "Bad Request: message is too long"),
        ({"chat_id": 1, "text": "   "}, "Bad Request: message text is empty"),
        ({"chat_id": 999, "text": "hi"}, "Bad Request: chat not found"),
        ({"chat_id": -999, "text": "hi"}, "Bad Request: chat not found"),
        (
            {
                "chat_id": 1,
                "text": "hi",
                "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": "x" * 65}]]},
            },
            "Bad Request: BUTTON_DATA_INVALID",
        ),
    ],
)
async def test_send_message_refusals(
    sb: Sandbox, http: aiohttp.ClientSession, params: dict[str, Any], description: str
) -> None:
    status, body = await call(http, sb, "sendMessage", **params)
    assert (status, body["ok"], body["description"]) == (400, False, description)
    assert sb.sent() == []


async def test_private_chat_rules(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, sb, "sendMessage", chat_id=2, text="hi")
    assert status == 403 and "can't initiate conversation" in body["description"]
    sb.block_bot(1)
    status, body = await call(http, sb, "sendMessage", chat_id=1, text="hi")
    assert (status, body["description"]) == (403, "Forbidden: bot was blocked by the user")
    sb.block_bot(1, False)
    status, body = await call(http, sb, "sendMessage", chat_id=1, text="4096 is fine" + "x" * 4084)
    assert status == 200 and len(sb.sent(1)[0].content) == 4096


async def test_caption_and_album_bounds(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    photo = sb.send_photo(1)["photo"][-1]["file_id"]
    status, body = await call(http, sb, "sendPhoto", chat_id=1, photo=photo, caption="c" * 1025)
    assert (status, body["description"]) == (400, "Bad Request: message caption is too long")
    one = [{"type": "photo", "media": photo}]
    status, body = await call(http, sb, "sendMediaGroup", chat_id=-10, media=one)
    assert status == 400 and "2-10" in body["description"]
    status, body = await call(http, sb, "sendMediaGroup", chat_id=-10, media=one * 11)
    assert status == 400
    status, body = await call(http, sb, "sendMediaGroup", chat_id=-10, media=one * 3)
    assert status == 200 and len(body["result"]) == 3
    assert len({m["media_group_id"] for m in body["result"]}) == 1


async def test_upload_get_file_download(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    image = tiny_png(42)
    form = aiohttp.FormData()
    form.add_field("chat_id", "-10")
    form.add_field("photo", image, filename="p.png", content_type="image/png")
    async with http.post(f"{sb.api_base_url}{TOKEN}/sendPhoto", data=form) as response:
        sent = (await response.json())["result"]
    size = sent["photo"][-1]
    assert (size["width"], size["height"]) == (64, 48)
    status, body = await call(http, sb, "getFile", file_id=size["file_id"])
    assert status == 200
    async with http.get(f"{sb.file_base_url}{TOKEN}/{body['result']['file_path']}") as response:
        assert await response.read() == image
    # The same bytes sent again by a user have the same file_unique_id (duplicate detection).
    again = sb.send_photo(2, chat_id=-10, image=image)
    assert again["photo"][-1]["file_unique_id"] == size["file_unique_id"]
    assert sb.send_photo(2, chat_id=-10)["photo"][-1]["file_unique_id"] != size["file_unique_id"]


async def test_long_poll_wakes_and_offset_confirms(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    _, body = await call(http, sb, "getUpdates", offset=0, timeout=0)
    first = body["result"]
    assert [u["message"]["text"] for u in first] == ["/start"]
    assert first[0]["message"]["entities"][0]["type"] == "bot_command"
    confirm = first[-1]["update_id"] + 1
    poll = asyncio.create_task(call(http, sb, "getUpdates", offset=confirm, timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()  # waiting for an update
    sb.send_text(1, "hello")
    _, body = await asyncio.wait_for(poll, 2)
    assert [u["message"]["text"] for u in body["result"]] == ["hello"]
    _, body = await call(http, sb, "getUpdates", offset=confirm, timeout=0)
    assert len(body["result"]) == 1  # not confirmed yet
    _, body = await call(http, sb, "getUpdates", offset=confirm + 1, timeout=0)
    assert body["result"] == [] and sb.last_offset_confirmed == confirm + 1


async def test_rate_limit_answers_429_with_retry_after(
    sb: Sandbox, http: aiohttp.ClientSession
) -> None:
    statuses = [(await call(http, sb, "sendMessage", chat_id=1, text=f"{i}"))[0] for i in range(3)]
    assert statuses[0] == 200 and 429 in statuses
    status, body = await call(http, sb, "sendMessage", chat_id=1, text="again")
    assert status == 429 and body["parameters"]["retry_after"] >= 1
    assert body["description"].startswith("Too Many Requests: retry after")
    assert sb.limit_violations() == []  # refused sends are not counted


async def test_faults(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject_faults("5xx", count=1, method="sendMessage")
    status, body = await call(http, sb, "sendMessage", chat_id=-10, text="lost")
    assert status == 502 and sb.sent() == []
    sb.inject_faults("drop", count=1)
    with pytest.raises(aiohttp.ClientError):
        await call(http, sb, "getMe")
    sb.force_429(-10, retry_after=7)
    status, body = await call(http, sb, "sendMessage", chat_id=-10, text="x")
    assert (status, body["parameters"]["retry_after"]) == (429, 7)
    sb.timeout_fault_s = 0.5
    sb.inject_faults("timeout", count=1)
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.2):
            await call(http, sb, "sendMessage", chat_id=-10, text="late")
    assert [m.content for m in sb.sent(-10)] == ["late"]  # done, then the answer stalled


async def test_callback_answer_and_stale_query(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    markup = {"inline_keyboard": [[{"text": "好", "callback_data": "ok"}]]}
    await call(http, sb, "sendMessage", chat_id=1, text="按一下", reply_markup=markup)
    message = sb.sent(1)[0]
    query_id = sb.press(1, message, text="好")
    status, _ = await call(http, sb, "answerCallbackQuery", callback_query_id=query_id, text="收到")
    assert status == 200 and sb.callback_answers[0].text == "收到"
    status, body = await call(http, sb, "answerCallbackQuery", callback_query_id=query_id)
    assert status == 400 and "query is too old" in body["description"]


async def test_edits(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await call(http, sb, "sendMessage", chat_id=-10, text="v1")
    message = sb.sent(-10)[0]
    status, _ = await call(
        http, sb, "editMessageText", chat_id=-10, message_id=message.message_id, text="v2"
    )
    assert status == 200 and message.content == "v2" and len(message.edits) == 1
    status, body = await call(
        http, sb, "editMessageText", chat_id=-10, message_id=message.message_id, text="v2"
    )
    assert status == 400 and "message is not modified" in body["description"]
    status, body = await call(http, sb, "editMessageText", chat_id=-10, message_id=999, text="x")
    assert (status, body["description"]) == (400, "Bad Request: message to edit not found")


def test_facts_come_from_the_official_list() -> None:
    from bot.sandbox.server import FACTS, METHODS

    assert FACTS["version"] == "Bot API 10.1" and len(METHODS) > 150
    assert METHODS["sendMessage"]["required"] == ["chat_id", "text"]
    assert "callback_query_id" in METHODS["answerCallbackQuery"]["required"]
