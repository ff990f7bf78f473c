"""``parse_mode`` as Telegram applies it: markup is checked, then stripped; limits count the
plain text. A user's "<" or "." in a formatted message is a classic production bug, so the
stand-in refuses what Telegram refuses ("Bad Request: can't parse entities: ...")."""

from __future__ import annotations

import html
import re

from bot.sandbox.errors import ApiError, bad

_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*/?>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_MD2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MD2_NAMES = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}


def _cant_parse(detail: str) -> ApiError:
    return bad(f"can't parse entities: {detail}")


def _offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def plain_text(text: str, parse_mode: object) -> str:
    """The text as Telegram stores it, or 400 if its markup is malformed."""
    mode = str(parse_mode or "").lower()
    if mode == "html":
        return _html(text)
    if mode == "markdownv2":
        return _markdown_v2(text)
    if mode == "markdown":
        return re.sub(r"[*_`]", "", text)
    if mode:
        raise bad(f"unsupported parse_mode {parse_mode!r}")
    return text


def _html(text: str) -> str:
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "<":
            match = _TAG.match(text, i)
            name = match.group(2).lower() if match else ""
            if match is None or name not in _HTML_TAGS:
                raise _cant_parse(
                    f'Unsupported start tag "{name}" at byte offset {_offset(text, i)}'
                )
            if match.group(1):
                if not stack or stack[-1] != name:
                    expected = f', expected "</{stack[-1]}>"' if stack else ""
                    raise _cant_parse(
                        f"Unmatched end tag at byte offset {_offset(text, i)}{expected}, "
                        f'found "</{name}>"'
                    )
                stack.pop()
            else:
                stack.append(name)
            i = match.end()
        elif char == "&":
            entity = _ENTITY.match(text, i)
            # Unknown named entities stay as they are, as Telegram leaves them.
            out.append(html.unescape(entity.group(0)) if entity else "&")
            i = entity.end() if entity else i + 1
        else:
            out.append(char)
            i += 1
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _markdown_v2(text: str) -> str:
    out: list[str] = []
    open_at: dict[str, int] = {}
    link_at: int | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == "`":
            fence = "```" if text.startswith("```", i) else "`"
            end = text.find(fence, i + len(fence))
            if end < 0:
                name = "Pre" if fence == "```" else "Code"
                raise _cant_parse(
                    f"Can't find end of {name} entity at byte offset {_offset(text, i)}"
                )
            out.append(text[i + len(fence) : end].replace("\\`", "`").replace("\\\\", "\\"))
            i = end + len(fence)
            continue
        token = text[i : i + 2] if text[i : i + 2] in ("__", "||") else char
        if token in _MD2_NAMES:
            if token in open_at:
                del open_at[token]
            else:
                open_at[token] = i
            i += len(token)
            continue
        if char == "[":
            link_at = i
            i += 1
            continue
        if char == "]" and link_at is not None:
            close = text.find(")", i) if text.startswith("(", i + 1) else -1
            if close < 0:
                raise _cant_parse(f"Can't find end of a URL at byte offset {_offset(text, i)}")
            link_at, i = None, close + 1
            continue
        if char == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # a blockquote line
            continue
        if char in _MD2_RESERVED:
            raise _cant_parse(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )
        out.append(char)
        i += 1
    if open_at or link_at is not None:
        token, at = min(open_at.items(), key=lambda kv: kv[1]) if open_at else ("[", link_at or 0)
        name = _MD2_NAMES.get(token, "TextUrl")
        raise _cant_parse(f"Can't find end of {name} entity at byte offset {_offset(text, at)}")
    return "".join(out)
