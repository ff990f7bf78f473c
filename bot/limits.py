"""Telegram's limits, in one place: the sender keeps them and the local stand-in enforces them.

Figures from the Bot API documentation and Telegram's bot FAQ (see DESIGN.md §8). Rate limits are
sliding windows: at most ``n`` messages in any ``window_s`` seconds. ``scaled`` shrinks every
window by the same factor so that tests run the same logic in less wall-clock time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# Methods that put a message into a chat: these count toward the per-chat and overall limits.
MESSAGE_METHODS: frozenset[str] = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendMediaGroup",
        "sendLocation",
        "sendVenue",
        "sendContact",
        "sendPoll",
        "sendDice",
        "sendAudio",
        "sendVideo",
        "sendVoice",
        "sendAnimation",
        "sendVideoNote",
        "sendSticker",
        "forwardMessage",
        "forwardMessages",
        "copyMessage",
        "copyMessages",
    }
)


@dataclass(frozen=True)
class RateWindow:
    """At most ``n`` events in any ``window_s`` seconds."""

    n: int
    window_s: float


@dataclass(frozen=True)
class TelegramLimits:
    overall: RateWindow = RateWindow(30, 1.0)
    private_chat: RateWindow = RateWindow(1, 1.0)
    group_chat: RateWindow = RateWindow(20, 60.0)
    text_max: int = 4096
    caption_max: int = 1024
    callback_data_max_bytes: int = 64
    album_min: int = 2
    album_max: int = 10
    download_max_bytes: int = 20 * 1024 * 1024

    def scaled(self, factor: float) -> TelegramLimits:
        """The same limits with every time window multiplied by ``factor``."""
        return replace(
            self,
            overall=RateWindow(self.overall.n, self.overall.window_s * factor),
            private_chat=RateWindow(self.private_chat.n, self.private_chat.window_s * factor),
            group_chat=RateWindow(self.group_chat.n, self.group_chat.window_s * factor),
        )

    def chat_window(self, chat_id: int | str) -> RateWindow:
        return self.group_chat if is_group_chat(chat_id) else self.private_chat


def counts_toward_limits(method: str) -> bool:
    return method in MESSAGE_METHODS


def is_group_chat(chat_id: int | str) -> bool:
    """Private chats have the user's (positive) id; groups, supergroups and channels are negative
    or an ``@username``."""
    if isinstance(chat_id, str):
        stripped = chat_id.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped) < 0
        return True
    return chat_id < 0


def utf16_len(text: str) -> int:
    """Telegram counts text length (and entity offsets) in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _hard_split(line: str, limit: int) -> list[str]:
    if utf16_len(line) <= limit:
        return [line]
    pieces, current, size = [], "", 0
    for char in line:
        width = utf16_len(char)
        if size + width > limit:
            pieces.append(current)
            current, size = "", 0
        current += char
        size += width
    return [*pieces, current]


def split_text(text: str, limit: int = TelegramLimits.text_max) -> list[str]:
    """``text`` as messages Telegram accepts (at most ``limit`` UTF-16 units each), broken
    between lines so that every line arrives whole; only a line longer than a whole message is
    cut inside. Nothing is dropped but blank pieces (Telegram refuses empty messages)."""
    pieces: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        for part in _hard_split(line, limit):
            candidate = part if current is None else f"{current}\n{part}"
            if utf16_len(candidate) <= limit:
                current = candidate
            else:
                if current is not None:
                    pieces.append(current)
                current = part
    if current is not None:
        pieces.append(current)
    return [piece for piece in pieces if piece.strip()]
