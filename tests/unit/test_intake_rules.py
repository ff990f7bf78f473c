"""Pure rules of the durable intake: which lane an update belongs to, how long a failed one
waits, and the webhook settings' one-line hints."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.services.inbox import describe, retry_delay
from bot.settings import ConfigError, load_settings

CHAT = {"id": -100500, "type": "supergroup"}
USER = {"id": 4001, "is_bot": False, "first_name": "赵"}


@pytest.mark.parametrize(
    ("update", "lane", "kind"),
    [
        ({"message": {"chat": CHAT, "from": USER}}, -100500, "message"),
        ({"edited_message": {"chat": {"id": 4001}, "from": USER}}, 4001, "edited_message"),
        ({"callback_query": {"from": USER, "message": {"chat": CHAT}}}, -100500, "callback_query"),
        # An inline-mode button: no message, so the user's lane.
        ({"callback_query": {"from": USER, "inline_message_id": "x"}}, 4001, "callback_query"),
        ({"my_chat_member": {"chat": CHAT, "from": USER}}, -100500, "my_chat_member"),
        ({"inline_query": {"from": USER, "query": "x"}}, 4001, "inline_query"),
        ({"poll_answer": {"user": USER, "poll_id": "p"}}, 4001, "poll_answer"),
        ({"poll": {"id": "p"}}, 0, "poll"),
        ({"brand_new_kind": {"x": 1}}, 0, "brand_new_kind"),
        ({}, 0, "unknown"),
    ],
)
def test_lane_and_kind(update: dict[str, Any], lane: int, kind: str) -> None:
    assert describe({"update_id": 1, **update}) == (lane, kind)


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 2), (2, 4), (3, 8), (10, 300), (50, 300)])
def test_retry_delay_doubles_and_is_capped(attempts: int, seconds: float) -> None:
    assert retry_delay(attempts, 2.0) == timedelta(seconds=seconds)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "WEBHOOK_URL",
        "WEBHOOK_SECRET",
        "WEBHOOK_MAX_CONNECTIONS",
        "HTTP_HOST",
        "HTTP_PORT",
        "INBOX_WORKERS",
        "INBOX_MAX_ATTEMPTS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env from the developer's checkout


def test_webhook_settings(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.http_host, settings.http_port, settings.inbox_workers) == (
        "127.0.0.1",
        8080,
        1,
    )
    with pytest.raises(ConfigError, match="WEBHOOK_URL is not set: set WEBHOOK_URL"):
        settings.webhook()
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/tg/hook")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET is not set: set WEBHOOK_SECRET"):
        load_settings().webhook()
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret_-X")
    assert load_settings().webhook() == ("https://bot.example.org/tg/hook", "/tg/hook", "s3cret_-X")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("WEBHOOK_URL", "bot.example.org/hook", "WEBHOOK_URL: must be a full https:// address"),
        ("WEBHOOK_SECRET", "has spaces", "WEBHOOK_SECRET: only A-Z, a-z, 0-9, _ and -"),
        ("WEBHOOK_SECRET", "x" * 257, "WEBHOOK_SECRET: only A-Z"),
        ("HTTP_PORT", "70000", "HTTP_PORT"),
        ("INBOX_WORKERS", "0", "INBOX_WORKERS"),
        ("INBOX_WORKERS", "9", "INBOX_WORKERS"),
        ("WEBHOOK_MAX_CONNECTIONS", "0", "WEBHOOK_MAX_CONNECTIONS"),
        ("INBOX_MAX_ATTEMPTS", "0", "INBOX_MAX_ATTEMPTS"),
    ],
)
def test_wrong_intake_setting_is_one_clear_line(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(says) and "\n" not in message and "set " in message
