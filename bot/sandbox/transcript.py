"""The simulated world as a readable, chronological transcript."""

from __future__ import annotations

from bot.sandbox.world import Event, SimChat, SimUser

_MARK = {"user": ":", "bot": ":", "edit": " ✎", "press": " ▸", "answer": " ⓘ", "system": ""}


def _chat_label(chat: SimChat | None, chat_id: int, users: dict[int, SimUser]) -> str:
    if chat is None:
        return str(chat_id)
    if chat.type == "private":
        user = users.get(chat.id)
        return f"{user.name if user else chat.id} ⇄ bot"
    return chat.title or str(chat.id)


def render_transcript(
    events: list[Event], chats: dict[int, SimChat], users: dict[int, SimUser]
) -> str:
    lines: list[str] = []
    current: int | None = None
    for event in events:
        if event.chat_id != current:
            current = event.chat_id
            label = _chat_label(chats.get(event.chat_id), event.chat_id, users)
            lines.append("")
            lines.append(f"── {label} ──")
        head = f"{event.who}{_MARK.get(event.kind, ':')} "
        body = event.text.splitlines() or [""]
        lines.append(head + body[0])
        lines.extend(" " * len(head) + line for line in body[1:])
    return "\n".join(lines).strip()
