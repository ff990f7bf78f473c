"""The simulated Telegram world: users, chats, files, messages the bot sent, queued updates."""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# What an administrator bot or person may do, as ChatMemberAdministrator lists it.
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


@dataclass
class SimUser:
    id: int
    first_name: str
    username: str | None = None
    language_code: str | None = "zh-hans"
    last_name: str | None = None
    started: bool = False  # has a private chat with the bot
    blocked: bool = False

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name

    def as_json(self) -> JSON:
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass
class SimChat:
    id: int
    type: str  # private | group | supergroup
    title: str | None = None
    members: set[int] = field(default_factory=set)
    admins: set[int] = field(default_factory=set)
    bot_is_member: bool = True
    bot_is_admin: bool = False
    next_message_id: int = 1
    # Why the bot is not in the chat any more ("left" or "kicked"); None if it never was or is.
    bot_gone: str | None = None

    def as_json(self, users: dict[int, SimUser]) -> JSON:
        if self.type == "private":
            user = users[self.id]
            return {"id": self.id, "type": "private", "first_name": user.first_name}
        return {"id": self.id, "type": self.type, "title": self.title or ""}

    def take_message_id(self) -> int:
        self.next_message_id += 1
        return self.next_message_id - 1


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str


@dataclass
class Upload:
    """One file part of a multipart request."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass
class PendingQuery:
    """A callback query the bot has not answered yet."""

    user_id: int
    chat_id: int
    message_id: int
    t: float  # on the sandbox clock, for expiry


@dataclass
class SentMessage:
    """A message the bot sent, as the stand-in keeps it (edits applied in place)."""

    seq: int
    chat_id: int
    message_id: int
    method: str
    time: float
    text: str | None = None
    caption: str | None = None
    photo: list[str] = field(default_factory=list)  # file ids, largest last
    document: JSON | None = None
    location: JSON | None = None
    reply_markup: JSON | None = None
    reply_to_message_id: int | None = None
    media_group_id: str | None = None
    edits: list[tuple[int, str | None]] = field(default_factory=list)  # (seq, new text)
    deleted: bool = False
    parse_mode: str | None = None

    @property
    def content(self) -> str:
        return self.text if self.text is not None else (self.caption or "")

    @property
    def buttons(self) -> list[list[str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [[b.get("text", "") for b in row] for row in rows]

    def button_data(self, text: str) -> str:
        for row in (self.reply_markup or {}).get("inline_keyboard") or []:
            for button in row:
                if button.get("text") == text and "callback_data" in button:
                    return str(button["callback_data"])
        raise KeyError(f"no button {text!r} on message {self.message_id}: {self.buttons}")

    def as_dict(self) -> JSON:
        """A plain summary, for the control API and for printing."""
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "method": self.method,
            "text": self.text,
            "caption": self.caption,
            "photo": self.photo,
            "document": self.document,
            "location": self.location,
            "buttons": self.buttons,
            "reply_to_message_id": self.reply_to_message_id,
            "media_group_id": self.media_group_id,
            "edits": len(self.edits),
            "deleted": self.deleted,
        }


@dataclass
class CallbackAnswer:
    seq: int
    query_id: str
    text: str | None
    show_alert: bool


@dataclass
class Event:
    """One line of the transcript."""

    seq: int
    chat_id: int
    who: str
    kind: str  # user | bot | edit | delete | press | answer | system | error
    text: str
    album: str | None = None  # media_group_id: consecutive parts print as one line
    hidden: bool = False  # a group message the bot never received (privacy mode)


def tiny_png(seed: int, width: int = 64, height: int = 48) -> bytes:
    """A small valid PNG whose colour (and so bytes and hash) depends on ``seed``."""
    colour = hashlib.sha256(str(seed).encode()).digest()[:3]
    row = b"\x00" + colour * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG or JPEG, or a plausible default for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                break
            marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + length
    return 1280, 960


def is_image(data: bytes) -> bool:
    """What Telegram's photo processing would accept, judged by the magic bytes."""
    return data.startswith(
        (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
    ) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def now_unix() -> int:
    return int(time.time())
