"""The Bot API methods the stand-in implements, each checking what Telegram checks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.sandbox.errors import NOT_MODIFIED, ApiError, bad
from bot.sandbox.world import JSON, CallbackAnswer, SentMessage, StoredFile, now_unix

if TYPE_CHECKING:
    from bot.sandbox.server import Sandbox


ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": False,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": False,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
}

Handler = Callable[["Sandbox", JSON, dict[str, bytes]], Awaitable[tuple[Any, int]]]
HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[name] = func
        return func

    return register


def check_target(sb: Sandbox, chat_id: object) -> None:
    """Who the bot may write to, as Telegram decides it."""
    if not isinstance(chat_id, int):
        raise bad("chat not found")
    user = sb.users.get(chat_id)
    if chat_id > 0:
        if user is None:
            raise bad("chat not found")
        if user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not user.started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return
    chat = sb.chats.get(chat_id)
    if chat is None or not chat.bot_is_member:
        raise bad("chat not found")


def _check_markup(markup: object) -> JSON | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            if not button.get("text"):
                raise bad("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                raise bad("BUTTON_DATA_INVALID")
    return markup


def _check_text(sb: Sandbox, text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise bad("message text is empty")
    limit = sb.limits.text_max if sb.limits else 4096
    if len(text) > limit:
        raise bad("message is too long")
    return text


def _check_caption(sb: Sandbox, caption: object) -> str | None:
    if caption is None or caption == "":
        return None
    limit = sb.limits.caption_max if sb.limits else 1024
    if len(str(caption)) > limit:
        raise bad("message caption is too long")
    return str(caption)


def _reply_to(params: JSON) -> int | None:
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and "message_id" in reply:
        return int(reply["message_id"])
    value = params.get("reply_to_message_id")
    return int(value) if value is not None else None


def _new_message(sb: Sandbox, method_name: str, params: JSON) -> SentMessage:
    chat = sb.chats[params["chat_id"]]
    reply_to = _reply_to(params)
    if reply_to is not None and isinstance(params.get("reply_parameters"), dict):
        known = (
            any(m.message_id == reply_to for m in sb.sent(chat.id))
            or reply_to < chat.next_message_id
        )
        if not known and not params["reply_parameters"].get("allow_sending_without_reply"):
            raise bad("message to be replied not found")
    return SentMessage(
        seq=0,
        chat_id=chat.id,
        message_id=chat.take_message_id(),
        method=method_name,
        time=float(now_unix()),
        reply_markup=_check_markup(params.get("reply_markup")),
        reply_to_message_id=reply_to,
    )


def _file(
    sb: Sandbox, value: object, uploads: dict[str, bytes], prefix: str, suffix: str
) -> StoredFile:
    if isinstance(value, str) and value.startswith("attach://"):
        data = uploads.get(value.removeprefix("attach://"))
        if data is None:
            raise bad(f"file {value} not found in the request")
        return sb.store_upload(data, prefix, suffix)
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        raise bad("failed to get HTTP URL content")
    stored = sb.file_for(str(value))
    if stored is None:
        raise bad("wrong file identifier/HTTP URL specified")
    return stored


@method("getMe")
async def get_me(sb: Sandbox, _params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return sb.bot.as_json() | {
        "is_bot": True,
        "can_join_groups": True,
        "can_read_all_group_messages": sb.can_read_all_group_messages,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }, 0


@method("getUpdates")
async def get_updates(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    if sb.webhook.get("url"):
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    offset = params.get("offset")
    limit = max(1, min(100, int(params.get("limit") or 100)))
    updates = sb.take_updates(int(offset) if offset is not None else None, limit)
    timeout = float(params.get("timeout") or 0)
    if not updates and timeout > 0:
        await sb.wait_updates(min(timeout, 50))
        updates = sb.take_updates(None, limit)
    allowed = params.get("allowed_updates")
    if isinstance(allowed, list) and allowed:
        updates = [u for u in updates if any(k in u for k in allowed)]
    return updates, 0


@method("setWebhook")
async def set_webhook(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    sb.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
    return True, 0


@method("deleteWebhook")
async def delete_webhook(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    sb.webhook = {}
    return True, 0


@method("getWebhookInfo")
async def get_webhook_info(sb: Sandbox, _p: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return {
        "url": sb.webhook.get("url", ""),
        "has_custom_certificate": False,
        "pending_update_count": len(sb.take_updates(None, 100)),
    }, 0


@method("sendMessage")
async def send_message(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    text = _check_text(sb, params.get("text"))
    message = _new_message(sb, "sendMessage", params)
    message.text = text
    sb.record_sent(message)
    return sb.message_json(message), 1


@method("sendPhoto")
async def send_photo(sb: Sandbox, params: JSON, uploads: dict[str, bytes]) -> tuple[Any, int]:
    caption = _check_caption(sb, params.get("caption"))
    stored = _file(sb, params.get("photo"), uploads, "photos", ".jpg")
    message = _new_message(sb, "sendPhoto", params)
    message.caption, message.photo = caption, [stored.file_id]
    sb.record_sent(message)
    return sb.message_json(message), 1


@method("sendDocument")
async def send_document(sb: Sandbox, params: JSON, uploads: dict[str, bytes]) -> tuple[Any, int]:
    caption = _check_caption(sb, params.get("caption"))
    value = params.get("document")
    name = str(value).removeprefix("attach://") if isinstance(value, str) else "file"
    stored = _file(sb, value, uploads, "documents", Path(name).suffix)
    message = _new_message(sb, "sendDocument", params)
    message.caption = caption
    message.document = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_name": name,
        "file_size": len(stored.data),
    }
    sb.record_sent(message)
    return sb.message_json(message), 1


@method("sendLocation")
async def send_location(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    message = _new_message(sb, "sendLocation", params)
    message.location = {"latitude": params["latitude"], "longitude": params["longitude"]}
    sb.record_sent(message)
    return sb.message_json(message), 1


@method("sendMediaGroup")
async def send_media_group(sb: Sandbox, params: JSON, uploads: dict[str, bytes]) -> tuple[Any, int]:
    media = params.get("media")
    limits = sb.limits
    low, high = (limits.album_min, limits.album_max) if limits else (2, 10)
    if not isinstance(media, list) or not low <= len(media) <= high:
        raise bad("wrong number of media in the media group: must include 2-10 items")
    stored_items = []
    for item in media:
        if not isinstance(item, dict) or item.get("type") not in ("photo", "document", "video"):
            raise bad("can't parse InputMedia JSON object")
        caption = _check_caption(sb, item.get("caption"))
        prefix = "photos" if item["type"] == "photo" else "documents"
        stored_items.append((item, caption, _file(sb, item.get("media"), uploads, prefix, ".jpg")))
    group_id = f"bot-album-{now_unix()}-{len(sb.sent())}"
    results = []
    for item, caption, stored in stored_items:
        message = _new_message(sb, "sendMediaGroup", params | {"reply_markup": None})
        message.caption, message.media_group_id = caption, group_id
        if item["type"] == "photo":
            message.photo = [stored.file_id]
        else:
            message.document = {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": "file",
                "file_size": len(stored.data),
            }
        sb.record_sent(message)
        results.append(sb.message_json(message))
    return results, len(results)


@method("sendChatAction")
async def send_chat_action(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    check_target(sb, params["chat_id"])
    return True, 0


def _target(sb: Sandbox, params: JSON) -> SentMessage:
    if params.get("inline_message_id"):
        raise bad("message to edit not found")
    chat_id, message_id = params.get("chat_id"), params.get("message_id")
    if chat_id is None or message_id is None:
        raise bad("message to edit not found")
    try:
        message = sb.message(int(chat_id), int(message_id))
    except (KeyError, ValueError):
        raise bad("message to edit not found") from None
    if message.deleted:
        raise bad("message to edit not found")
    return message


@method("editMessageText")
async def edit_message_text(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    message = _target(sb, params)
    if message.text is None:
        raise bad("there is no text in the message to edit")
    text = _check_text(sb, params.get("text"))
    markup = _check_markup(params.get("reply_markup"))
    if text == message.text and markup == message.reply_markup:
        raise bad(NOT_MODIFIED)
    message.text, message.reply_markup = text, markup
    sb.record_edit(message, text)
    return sb.message_json(message), 0


@method("editMessageCaption")
async def edit_message_caption(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    message = _target(sb, params)
    caption = _check_caption(sb, params.get("caption"))
    markup = _check_markup(params.get("reply_markup"))
    if caption == message.caption and markup == message.reply_markup:
        raise bad(NOT_MODIFIED)
    message.caption, message.reply_markup = caption, markup
    sb.record_edit(message, caption)
    return sb.message_json(message), 0


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(
    sb: Sandbox, params: JSON, _u: dict[str, bytes]
) -> tuple[Any, int]:
    message = _target(sb, params)
    markup = _check_markup(params.get("reply_markup"))
    if markup == message.reply_markup:
        raise bad(NOT_MODIFIED)
    message.reply_markup = markup
    sb.record_edit(message, message.text)
    return sb.message_json(message), 0


@method("deleteMessage")
async def delete_message(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    try:
        message = sb.message(int(params["chat_id"]), int(params["message_id"]))
    except (KeyError, ValueError):
        raise bad("message to delete not found") from None
    message.deleted = True
    return True, 0


@method("answerCallbackQuery")
async def answer_callback_query(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    query_id = str(params["callback_query_id"])
    query = sb.queries().pop(query_id, None)
    if query is None:
        raise bad("query is too old and response timeout expired or query ID is invalid")
    text = params.get("text")
    if text is not None and len(str(text)) > 200:
        raise bad("MESSAGE_TOO_LONG")
    answer = CallbackAnswer(
        0, query_id, str(text) if text else None, bool(params.get("show_alert", False))
    )
    sb.record_answer(answer, query[1])
    return True, 0


@method("getFile")
async def get_file(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    stored = sb.file_for(str(params["file_id"]))
    if stored is None:
        raise bad("invalid file_id")
    limit = sb.limits.download_max_bytes if sb.limits else 20 * 1024 * 1024
    if len(stored.data) > limit:
        raise bad("file is too big")
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "file_path": stored.file_path,
    }, 0


def _scope_key(params: JSON) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")


@method("setMyCommands")
async def set_my_commands(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    commands = params["commands"]
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad("can't parse commands JSON object")
    for command in commands:
        name, description = command.get("command", ""), command.get("description", "")
        if not ((1 <= len(name) <= 32 and name.islower()) or name.isdigit()):
            raise bad("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
    sb.commands_store()[_scope_key(params)] = commands
    return True, 0


@method("getMyCommands")
async def get_my_commands(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return sb.commands_store().get(_scope_key(params), []), 0


@method("deleteMyCommands")
async def delete_my_commands(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    sb.commands_store().pop(_scope_key(params), None)
    return True, 0


@method("setChatMenuButton")
async def set_chat_menu_button(sb: Sandbox, _p: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return True, 0


def _group(sb: Sandbox, chat_id: object) -> Any:
    chat = sb.chats.get(chat_id) if isinstance(chat_id, int) else None
    if chat is None or (chat.type != "private" and not chat.bot_is_member):
        raise bad("chat not found")
    return chat


@method("getChat")
async def get_chat(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    chat = _group(sb, params["chat_id"])
    return chat.as_json(sb.users) | {
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
        },
    }, 0


@method("getChatMember")
async def get_chat_member(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    chat = _group(sb, params["chat_id"])
    user_id = int(params["user_id"])
    if user_id == sb.bot.id:
        user = sb.bot.as_json() | {"is_bot": True}
        if chat.bot_is_admin:
            return {"status": "administrator", "user": user, **ADMIN_RIGHTS}, 0
        return {"status": "member", "user": user}, 0
    sim = sb.users.get(user_id)
    if sim is None:
        raise bad("user not found")
    if user_id in chat.admins:
        return {"status": "administrator", "user": sim.as_json(), **ADMIN_RIGHTS}, 0
    if user_id in chat.members:
        return {"status": "member", "user": sim.as_json()}, 0
    return {"status": "left", "user": sim.as_json()}, 0


@method("getChatAdministrators")
async def get_chat_administrators(
    sb: Sandbox, params: JSON, _u: dict[str, bytes]
) -> tuple[Any, int]:
    chat = _group(sb, params["chat_id"])
    return [
        {"status": "administrator", "user": sb.users[uid].as_json(), **ADMIN_RIGHTS}
        for uid in sorted(chat.admins)
        if uid in sb.users
    ], 0


@method("getChatMemberCount")
async def get_chat_member_count(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return len(_group(sb, params["chat_id"]).members) + 1, 0


@method("leaveChat")
async def leave_chat(sb: Sandbox, params: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    _group(sb, params["chat_id"]).bot_is_member = False
    return True, 0


@method("logOut")
async def log_out(_sb: Sandbox, _p: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return True, 0


@method("close")
async def close(_sb: Sandbox, _p: JSON, _u: dict[str, bytes]) -> tuple[Any, int]:
    return True, 0
