"""The real python-telegram-bot Application, polling the stand-in over HTTP, works unchanged."""

from collections.abc import AsyncIterator

import pytest
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    Update,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.sandbox import Sandbox, tiny_png

TOKEN = "123456:PTB"
USER = 1


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(" ".join(context.args or []) or "?")


async def menu(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None
    keyboard = [[InlineKeyboardButton("好", callback_data="ok")]]
    await update.effective_message.reply_text("选一个", reply_markup=InlineKeyboardMarkup(keyboard))


async def pressed(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("收到")
    await query.edit_message_text(f"已选择 {query.data}")


async def photo_back(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None and message.photo
    data = await (await context.bot.get_file(message.photo[-1].file_id)).download_as_bytearray()
    await message.reply_photo(bytes(data), caption=f"{len(data)} bytes")


async def album(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    await message.reply_media_group(
        [InputMediaPhoto(tiny_png(100 + i), caption="第一张" if i == 0 else None) for i in range(3)]
    )


async def ledger(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    assert message is not None
    await message.reply_document(InputFile(b"PK\x03\x04 fake workbook", filename="台账.xlsx"))


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(TOKEN, limits=None) as sandbox:
        sandbox.add_user(USER, "张三")
        app = (
            Application.builder()
            .token(TOKEN)
            .base_url(sandbox.api_base_url)
            .base_file_url(sandbox.file_base_url)
            .build()
        )
        app.add_handler(CommandHandler("echo", echo))
        app.add_handler(CommandHandler("menu", menu))
        app.add_handler(CommandHandler("album", album))
        app.add_handler(CommandHandler("ledger", ledger))
        app.add_handler(CallbackQueryHandler(pressed))
        app.add_handler(MessageHandler(filters.PHOTO, photo_back))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            yield sandbox
        finally:
            sandbox.release_pollers()  # stop without waiting out the long poll
            await app.updater.stop()
            await app.stop()
            await app.shutdown()


async def test_command_reply(sb: Sandbox) -> None:
    sb.send_text(USER, "/echo 你好 世界")
    [reply] = await sb.wait_messages(USER, timeout=5)
    assert reply.text == "你好 世界" and reply.reply_to_message_id is None
    assert sb.last_offset_confirmed > 0 or sb.updates_fetched > 0


async def test_button_press_answer_and_edit(sb: Sandbox) -> None:
    sb.send_text(USER, "/menu")
    [message] = await sb.wait_messages(USER, timeout=5)
    assert message.buttons == [["好"]] and message.button_data("好") == "ok"
    mark = sb.mark()
    query_id = sb.press(USER, message, text="好")
    answer = await sb.wait_answer(query_id, timeout=5)
    assert answer.text == "收到" and not answer.show_alert
    edited = await sb.wait_change(message, since=mark, timeout=5)
    assert edited is message and message.text == "已选择 ok"
    assert message.buttons == []  # an edit without reply_markup drops the keyboard


async def test_photo_round_trip(sb: Sandbox) -> None:
    image = tiny_png(7)
    sent = sb.send_photo(USER, image=image)
    [reply] = await sb.wait_messages(USER, timeout=5)
    assert reply.caption == f"{len(image)} bytes"
    # The bot downloaded the bytes and sent them back: the same file, by content.
    assert reply.photo == [sent["photo"][-1]["file_id"]]
    assert sb.files[reply.photo[0]].file_unique_id == sent["photo"][-1]["file_unique_id"]


async def test_uploaded_media_group(sb: Sandbox) -> None:
    sb.send_text(USER, "/album")
    parts = await sb.wait_messages(USER, n=3, timeout=5)
    assert [p.caption for p in parts] == ["第一张", None, None]
    assert len({p.media_group_id for p in parts}) == 1
    assert len({sb.files[p.photo[0]].file_unique_id for p in parts}) == 3
    assert "[album ×3] 第一张" in sb.transcript()


async def test_uploaded_document_keeps_its_name(sb: Sandbox) -> None:
    sb.send_text(USER, "/ledger")
    [document] = await sb.wait_messages(USER, timeout=5)
    assert document.document is not None
    assert document.document["file_name"] == "台账.xlsx"
    assert document.document["mime_type"].endswith("spreadsheetml.sheet")
