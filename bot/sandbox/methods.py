"""The Bot API methods the stand-in implements, each checking what Telegram checks.

A handler takes the sandbox, the decoded parameters and the uploaded files, and returns the
result plus how many messages it put into a chat (for the rate limits). It raises `ApiError`
with Telegram's status and description to refuse.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.sandbox.errors import NOT_MODIFIED, ApiError, bad
from bot.sandbox.formatting import plain_text
from bot.sandbox.webhook import webhook_url_refusal
from bot.sandbox.world import (
    ADMIN_RIGHTS,
    JSON,
    CallbackAnswer,
    SentMessage,
    SimChat,
    StoredFile,
    Upload,
    is_image,
    now_unix,
)

if TYPE_CHECKING:
    from bot.sandbox.server import Sandbox


CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")

Uploads = dict[str, Upload]
Result = tuple[Any, int]
Handler = Callable[["Sandbox", JSON, Uploads], Awaitable[Result]]
HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[name] = func
        return func

    return register


# ---------------------------------------------------------------- shared checks


def check_target(sb: Sandbox, chat_id: object) -> SimChat:
    """The chat the bot may write to, or Telegram's refusal."""
    if not isinstance(chat_id, int):
        raise bad("chat not found")  # @usernames: no public chats in the simulated world
    if chat_id > 0:
        user = sb.users.get(chat_id)
        if user is None:
            raise bad("chat not found")
        if user.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if not user.started or chat_id not in sb.chats:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return sb.chats[chat_id]
    chat = sb.chats.get(chat_id)
    if chat is None:
        raise bad("chat not found")
    if not chat.bot_is_member:
        kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
        if chat.bot_gone == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {kind}")
        if chat.bot_gone == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {kind}")
        raise bad("chat not found")
    return chat


def _limit(sb: Sandbox, name: str, default: int) -> int:
    return int(getattr(sb.limits, name)) if sb.limits is not None else default


def _check_markup(markup: object) -> JSON | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    inline = markup.get("inline_keyboard")
    if inline is not None:
        if not isinstance(inline, list) or not all(isinstance(row, list) for row in inline):
            raise bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in inline:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise bad("can't parse inline keyboard button: Text buttons are unallowed")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                    raise bad("BUTTON_DATA_INVALID")
                url = button.get("url")
                if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
                    raise bad("BUTTON_URL_INVALID")
    return markup


def _check_text(sb: Sandbox, text: object, parse_mode: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise bad("message text is empty")
    plain = plain_text(text, parse_mode)
    if not plain.strip():
        raise bad("message text is empty")
    if len(plain) > _limit(sb, "text_max", 4096):
        raise bad("message is too long")
    return plain


def _check_caption(sb: Sandbox, caption: object, parse_mode: object) -> str | None:
    if caption is None or caption == "":
        return None
    plain = plain_text(str(caption), parse_mode)
    if len(plain) > _limit(sb, "caption_max", 1024):
        raise bad("message caption is too long")
    return plain


def _reply_to(params: JSON) -> tuple[int | None, bool]:
    """The message replied to, and whether a missing one may be ignored."""
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and "message_id" in reply:
        return int(reply["message_id"]), bool(reply.get("allow_sending_without_reply"))
    value = params.get("reply_to_message_id")
    if value is None:
        return None, False
    return int(value), bool(params.get("allow_sending_without_reply"))


def _new_message(sb: Sandbox, method_name: str, params: JSON) -> SentMessage:
    chat = check_target(sb, params["chat_id"])
    reply_to, may_ignore = _reply_to(params)
    if reply_to is not None and not sb.message_exists(chat.id, reply_to):
        if not may_ignore:
            raise bad("message to be replied not found")
        reply_to = None
    markup = _check_markup(params.get("reply_markup"))
    return SentMessage(
        seq=0,
        chat_id=chat.id,
        message_id=0,  # taken once every check has passed: refusals consume no ids
        method=method_name,
        time=float(now_unix()),
        reply_markup=markup,
        reply_to_message_id=reply_to,
        parse_mode=params.get("parse_mode"),
    )


def _commit(sb: Sandbox, message: SentMessage, *, label: str | None = None) -> JSON:
    message.message_id = sb.chats[message.chat_id].take_message_id()
    sb.record_sent(message, label=label)
    return sb.message_json(message)


def _file(
    sb: Sandbox, value: object, uploads: Uploads, prefix: str, suffix: str
) -> tuple[StoredFile, Upload | None]:
    """An uploaded file (``attach://name``), or one Telegram already has (its file_id)."""
    if isinstance(value, str) and value.startswith("attach://"):
        upload = uploads.get(value.removeprefix("attach://"))
        if upload is None:
            raise bad(f"file {value} not found in the request")
        if upload.filename:
            suffix = Path(upload.filename).suffix or suffix
        return sb.store_file(upload.data, prefix, suffix), upload
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        raise bad("failed to get HTTP URL content")  # the stand-in never reaches the internet
    stored = sb.file_for(str(value))
    if stored is None:
        raise bad("wrong file identifier/HTTP URL specified")
    return stored, None


def _photo(sb: Sandbox, value: object, uploads: Uploads) -> StoredFile:
    stored, upload = _file(sb, value, uploads, "photos", ".jpg")
    if upload is not None and not is_image(upload.data):
        raise bad("IMAGE_PROCESS_FAILED")
    return stored


def _document(sb: Sandbox, value: object, uploads: Uploads) -> JSON:
    stored, upload = _file(sb, value, uploads, "documents", "")
    name = (upload.filename if upload else None) or Path(stored.file_path).name
    mime = upload.content_type if upload else None
    if not mime or mime == "application/octet-stream":
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_name": name,
        "mime_type": mime,
        "file_size": len(stored.data),
    }


# ---------------------------------------------------------------- bot and updates


@method("getMe")
async def get_me(sb: Sandbox, _params: JSON, _u: Uploads) -> Result:
    return sb.bot_json() | {
        "can_join_groups": True,
        "can_read_all_group_messages": sb.can_read_all_group_messages,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }, 0


@method("getUpdates")
async def get_updates(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    if sb.webhook.get("url"):
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    generation = sb.new_poll()
    if isinstance(params.get("allowed_updates"), list):
        # Kept until changed and applied to updates queued from now on, as Telegram does.
        sb.allowed_updates = [str(kind) for kind in params["allowed_updates"]]
    offset = params.get("offset")
    limit = max(1, min(100, int(params.get("limit") or 100)))
    updates = sb.take_updates(int(offset) if offset is not None else None, limit)
    timeout = float(params.get("timeout") or 0)
    if not updates and timeout > 0:
        await sb.wait_updates(min(timeout, 50), generation)
        updates = sb.take_updates(None, limit)
    sb.note_fetched(updates)
    return updates, 0


@method("setWebhook")
async def set_webhook(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    url = str(params["url"]).strip()
    if url and (refusal := webhook_url_refusal(url)) is not None:
        raise bad(refusal)
    secret = params.get("secret_token")
    if secret is not None:
        secret = str(secret)
        if not _SECRET_TOKEN.fullmatch(secret):
            raise bad("bad webhook: secret token contains unallowed characters")
    if isinstance(params.get("allowed_updates"), list):
        sb.allowed_updates = [str(kind) for kind in params["allowed_updates"]]
    if params.get("drop_pending_updates"):
        sb.take_updates(10**12, 1)  # an offset past everything confirms all
    await sb.set_webhook(url, secret)
    if url:
        sb.webhook["max_connections"] = int(params.get("max_connections") or 40)
    return True, 0


@method("deleteWebhook")
async def delete_webhook(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    await sb.set_webhook("", None)
    if params.get("drop_pending_updates"):
        sb.take_updates(10**12, 1)
    return True, 0


@method("getWebhookInfo")
async def get_webhook_info(sb: Sandbox, _p: JSON, _u: Uploads) -> Result:
    info: JSON = {
        "url": sb.webhook.get("url", ""),
        "has_custom_certificate": False,
        "pending_update_count": sb.pending_updates,
    }
    for key in ("last_error_date", "last_error_message", "max_connections"):
        if key in sb.webhook:
            info[key] = sb.webhook[key]
    if sb.webhook and sb.allowed_updates:
        info["allowed_updates"] = sb.allowed_updates
    return info, 0


@method("logOut")
async def log_out(_sb: Sandbox, _p: JSON, _u: Uploads) -> Result:
    return True, 0


@method("close")
async def close(_sb: Sandbox, _p: JSON, _u: Uploads) -> Result:
    return True, 0


# ---------------------------------------------------------------- sending


@method("sendMessage")
async def send_message(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    message = _new_message(sb, "sendMessage", params)
    message.text = _check_text(sb, params.get("text"), params.get("parse_mode"))
    return _commit(sb, message), 1


@method("sendPhoto")
async def send_photo(sb: Sandbox, params: JSON, uploads: Uploads) -> Result:
    message = _new_message(sb, "sendPhoto", params)
    message.caption = _check_caption(sb, params.get("caption"), params.get("parse_mode"))
    message.photo = [_photo(sb, params.get("photo"), uploads).file_id]
    return _commit(sb, message), 1


@method("sendDocument")
async def send_document(sb: Sandbox, params: JSON, uploads: Uploads) -> Result:
    message = _new_message(sb, "sendDocument", params)
    message.caption = _check_caption(sb, params.get("caption"), params.get("parse_mode"))
    message.document = _document(sb, params.get("document"), uploads)
    return _commit(sb, message), 1


@method("sendLocation")
async def send_location(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    latitude, longitude = float(params["latitude"]), float(params["longitude"])
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise bad("wrong latitude or longitude specified")
    message = _new_message(sb, "sendLocation", params)
    message.location = {"latitude": latitude, "longitude": longitude}
    return _commit(sb, message), 1


@method("sendMediaGroup")
async def send_media_group(sb: Sandbox, params: JSON, uploads: Uploads) -> Result:
    check_target(sb, params["chat_id"])
    media = params.get("media")
    low, high = _limit(sb, "album_min", 2), _limit(sb, "album_max", 10)
    if not isinstance(media, list) or not low <= len(media) <= high:
        raise bad(f"wrong number of media in the media group: must include {low}-{high} items")
    kinds = {item.get("type") for item in media if isinstance(item, dict)}
    if len(kinds) != 1 and ("document" in kinds or "audio" in kinds):
        raise bad("document can't be mixed with other media types")
    prepared: list[tuple[str | None, str | None, JSON | None]] = []
    for item in media:
        if not isinstance(item, dict) or item.get("type") not in ("photo", "document", "video"):
            raise bad("can't parse InputMedia JSON object")
        caption = _check_caption(sb, item.get("caption"), item.get("parse_mode"))
        if item["type"] == "photo":
            prepared.append((caption, _photo(sb, item.get("media"), uploads).file_id, None))
        else:
            prepared.append((caption, None, _document(sb, item.get("media"), uploads)))
    # Albums carry no keyboard; every part replies to the same message, if any.
    messages = [_new_message(sb, "sendMediaGroup", params | {"reply_markup": None}) for _ in media]
    group_id = f"bot-album-{sb.mark()}"
    results = []
    for message, (caption, photo, document) in zip(messages, prepared, strict=True):
        message.caption, message.media_group_id = caption, group_id
        message.photo = [photo] if photo else []
        message.document = document
        results.append(_commit(sb, message))
    return results, len(results)


@method("sendChatAction")
async def send_chat_action(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    check_target(sb, params["chat_id"])
    if params["action"] not in CHAT_ACTIONS:
        raise bad("wrong parameter action in request")
    return True, 0


# ---------------------------------------------------------------- editing


def _target(sb: Sandbox, params: JSON, missing: str = "message to edit not found") -> SentMessage:
    if params.get("inline_message_id"):
        raise bad("MESSAGE_ID_INVALID")  # no inline mode in the simulated world
    chat_id, message_id = params.get("chat_id"), params.get("message_id")
    if chat_id is None:
        raise bad("chat_id is empty")
    if message_id is None:
        raise bad("message identifier is not specified")
    check_target(sb, chat_id)
    try:
        message = sb.message(int(chat_id), int(message_id))
    except (KeyError, ValueError):
        if isinstance(chat_id, int) and sb.user_message(chat_id, int(message_id)) is not None:
            raise bad("message can't be edited") from None
        raise bad(missing) from None
    if message.deleted:
        raise bad(missing)
    return message


@method("editMessageText")
async def edit_message_text(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    message = _target(sb, params)
    if message.text is None:
        raise bad("there is no text in the message to edit")
    text = _check_text(sb, params.get("text"), params.get("parse_mode"))
    # Telegram drops an inline keyboard that an edit does not repeat.
    markup = _check_markup(params.get("reply_markup"))
    if text == message.text and markup == message.reply_markup:
        raise bad(NOT_MODIFIED)
    message.text, message.reply_markup = text, markup
    sb.record_edit(message, text)
    return sb.message_json(message), 0


@method("editMessageCaption")
async def edit_message_caption(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    message = _target(sb, params)
    if message.text is not None:
        raise bad("there is no caption in the message to edit")
    caption = _check_caption(sb, params.get("caption"), params.get("parse_mode"))
    markup = _check_markup(params.get("reply_markup"))
    if caption == message.caption and markup == message.reply_markup:
        raise bad(NOT_MODIFIED)
    message.caption, message.reply_markup = caption, markup
    sb.record_edit(message, caption)
    return sb.message_json(message), 0


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    message = _target(sb, params)
    markup = _check_markup(params.get("reply_markup"))
    if markup == message.reply_markup:
        raise bad(NOT_MODIFIED)
    message.reply_markup = markup
    sb.record_edit(message, message.text)
    return sb.message_json(message), 0


@method("deleteMessage")
async def delete_message(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat = check_target(sb, params["chat_id"])
    message_id = int(params["message_id"])
    try:
        message = sb.message(chat.id, message_id)
    except KeyError:
        if sb.user_message(chat.id, message_id) is None:
            raise bad("message to delete not found") from None
        if chat.type != "private" and not chat.bot_is_admin:
            raise bad("message can't be deleted") from None
        return True, 0
    if message.deleted:
        raise bad("message to delete not found")
    sb.record_delete(message)
    return True, 0


# ---------------------------------------------------------------- callbacks, files, commands


@method("answerCallbackQuery")
async def answer_callback_query(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    query_id = str(params["callback_query_id"])
    query = sb.take_query(query_id)
    if query is None:
        raise bad("query is too old and response timeout expired or query ID is invalid")
    text = params.get("text")
    if text is not None and len(str(text)) > 200:
        raise bad("MESSAGE_TOO_LONG")
    answer = CallbackAnswer(
        0, query_id, str(text) if text else None, bool(params.get("show_alert", False))
    )
    sb.record_answer(answer, query.chat_id)
    return True, 0


@method("getFile")
async def get_file(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    stored = sb.file_for(str(params["file_id"]))
    if stored is None:
        raise bad("wrong file_id or the file is temporarily unavailable")
    if len(stored.data) > _limit(sb, "download_max_bytes", 20 * 1024 * 1024):
        raise bad("file is too big")
    return {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
        "file_path": stored.file_path,
    }, 0


def _check_scope_chat(sb: Sandbox, scope: object) -> None:
    """A scope naming one chat needs a chat the bot has: a group it is in, or the private chat
    of a user who has opened the bot (otherwise Telegram answers "chat not found")."""
    if not isinstance(scope, dict) or scope.get("type") not in (
        "chat",
        "chat_administrators",
        "chat_member",
    ):
        return
    chat_id = scope.get("chat_id")
    if not isinstance(chat_id, int) or chat_id not in sb.chats:
        raise bad("chat not found")


@method("setMyCommands")
async def set_my_commands(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    commands = params["commands"]
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad("can't parse commands JSON object")
    for command in commands:
        if not isinstance(command, dict):
            raise bad("can't parse BotCommand JSON object")
        name, description = str(command.get("command", "")), str(command.get("description", ""))
        if not (1 <= len(name) <= 32 and all(c.islower() or c.isdigit() or c == "_" for c in name)):
            raise bad("BOT_COMMAND_INVALID")
        if not 1 <= len(description) <= 256:
            raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
    _check_scope_chat(sb, params.get("scope"))
    sb.set_commands(sb.scope_key(params.get("scope"), params.get("language_code")), commands)
    return True, 0


@method("getMyCommands")
async def get_my_commands(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    return sb.get_commands(sb.scope_key(params.get("scope"), params.get("language_code"))), 0


@method("deleteMyCommands")
async def delete_my_commands(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    sb.set_commands(sb.scope_key(params.get("scope"), params.get("language_code")), None)
    return True, 0


@method("setChatMenuButton")
async def set_chat_menu_button(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat_id = params.get("chat_id")
    sb.menu_buttons[int(chat_id) if chat_id is not None else None] = params.get("menu_button") or {
        "type": "default"
    }
    return True, 0


@method("getChatMenuButton")
async def get_chat_menu_button(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat_id = params.get("chat_id")
    key = int(chat_id) if chat_id is not None else None
    return sb.menu_buttons.get(key) or sb.menu_buttons.get(None) or {"type": "commands"}, 0


# ---------------------------------------------------------------- chats and members


@method("getChat")
async def get_chat(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat = check_target(sb, params["chat_id"])
    return chat.as_json(sb.users) | {
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False,
            "limited_gifts": False,
            "unique_gifts": False,
            "premium_subscription": False,
            "gifts_from_channels": False,
        },
    }, 0


def _member(sb: Sandbox, chat: SimChat, user_id: int, *, first_admin: int | None) -> JSON:
    if user_id == sb.bot.id:
        if chat.bot_is_admin:
            return {"status": "administrator", "user": sb.bot_json(), **ADMIN_RIGHTS}
        return {"status": "member" if chat.bot_is_member else "left", "user": sb.bot_json()}
    user = sb.users.get(user_id)
    if user is None:
        raise bad("user not found")
    if chat.type == "private":
        return {"status": "member" if user_id == chat.id else "left", "user": user.as_json()}
    if user_id == first_admin:  # the first admin listed created the group
        return {"status": "creator", "user": user.as_json(), "is_anonymous": False}
    if user_id in chat.admins:
        return {"status": "administrator", "user": user.as_json(), **ADMIN_RIGHTS}
    if user_id in chat.members:
        return {"status": "member", "user": user.as_json()}
    return {"status": "left", "user": user.as_json()}


def _creator(chat: SimChat) -> int | None:
    return min(chat.admins) if chat.admins else None


@method("getChatMember")
async def get_chat_member(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat = check_target(sb, params["chat_id"])
    return _member(sb, chat, int(params["user_id"]), first_admin=_creator(chat)), 0


@method("getChatAdministrators")
async def get_chat_administrators(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat = check_target(sb, params["chat_id"])
    if chat.type == "private":
        raise bad("there are no administrators in the private chat")
    admins = [_member(sb, chat, uid, first_admin=_creator(chat)) for uid in sorted(chat.admins)]
    if chat.bot_is_admin:
        admins.append(_member(sb, chat, sb.bot.id, first_admin=None))
    return admins, 0


@method("getChatMemberCount")
async def get_chat_member_count(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat = check_target(sb, params["chat_id"])
    return (2 if chat.type == "private" else len(chat.members) + 1), 0


@method("leaveChat")
async def leave_chat(sb: Sandbox, params: JSON, _u: Uploads) -> Result:
    chat = check_target(sb, params["chat_id"])
    if chat.type == "private":
        raise bad("chat member status can't be changed in private chats")
    old = "administrator" if chat.bot_is_admin else "member"
    chat.bot_is_member, chat.bot_is_admin, chat.bot_gone = False, False, "left"
    sb.bot_left(chat, old)
    return True, 0
