"""The simulated world as a readable, chronological transcript.

    ── 南湖区生态环境工作群 ──
    王主任 adds the bot
    bot: 大家好…
    张三: [album ×3] #问题 河边有垃圾
    ── 张三 ⇄ bot ──
    bot: 请选择类别
         [大气] [水]
    张三 ▸ [大气]
    bot ✎ 已选择：大气

Labels stay minimal and language-neutral; the people and the bot speak for themselves.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from bot.sandbox.world import Event

_MARK = {
    "user": ":",
    "bot": ":",
    "edit": " ✎",
    "delete": " ✗ deleted:",
    "press": " ▸",
    "answer": " ⓘ",
    "alert": " ⚠",
    "system": "",
    "error": " ✗",
}
HIDDEN = "  (not delivered: privacy mode)"


def _width(text: str) -> int:
    """Columns on a terminal: CJK characters take two, so continuation lines line up."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _merge_albums(events: list[Event]) -> list[Event]:
    """Consecutive parts of one album print as one line (the first part's)."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            last is not None
            and event.album is not None
            and (last.album, last.chat_id, last.who, last.kind)
            == (event.album, event.chat_id, event.who, event.kind)
        ):
            continue
        merged.append(event)
    return merged


def _album_counts(events: list[Event]) -> dict[tuple[int, str], int]:
    counts: dict[tuple[int, str], int] = {}
    for event in events:
        if event.album is not None and event.kind == "bot":
            key = (event.chat_id, event.album)
            counts[key] = counts.get(key, 0) + 1
    return counts


def render_transcript(events: list[Event], chat_label: Callable[[int], str]) -> str:
    counts = _album_counts(events)
    lines: list[str] = []
    current: int | None = None
    for event in _merge_albums(events):
        if event.chat_id != current:
            current = event.chat_id
            lines.append(f"── {chat_label(event.chat_id)} ──")
        text = event.text
        if event.kind == "bot" and event.album is not None:
            text = f"[album ×{counts[(event.chat_id, event.album)]}] " + text.replace(
                "[photo] ", "", 1
            ).replace("[photo]", "", 1)
        head = f"{event.who}{_MARK.get(event.kind, ':')} "
        body = text.strip().splitlines() or [""]
        body[0] += HIDDEN if event.hidden else ""
        lines.append((head + body[0]).rstrip())
        lines.extend((" " * _width(head) + line).rstrip() for line in body[1:])
    return "\n".join(lines)
