"""Settings from the environment and `.env`; a wrong value stops start-up with one clear line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LocaleName = Literal["zh_CN", "en"]

# How to fix each setting, said once where start-up fails.
_HINTS: dict[str, str] = {
    "bot_token": "set BOT_TOKEN to the token @BotFather gave you, e.g. 123456:ABC-DEF",
    "bot_api_base_url": "set BOT_API_BASE_URL to your Bot API server, e.g. http://127.0.0.1:8081",
    "database_url": "set DATABASE_URL to sqlite+aiosqlite:///data/greengrid.db "
    "or postgresql+asyncpg://user@host/db",
    "timezone": "set TIMEZONE to an IANA zone name, e.g. Asia/Shanghai",
    "default_locale": "set DEFAULT_LOCALE to zh_CN or en",
    "admin_ids": "set ADMIN_IDS to Telegram user ids separated by commas, e.g. 1001,1002",
    "rules_file": "set RULES_FILE to an existing YAML or TOML rules file, or unset it",
    "media_dir": "set MEDIA_DIR to a folder the bot may write photos into",
    "rate_limit_scale": "set RATE_LIMIT_SCALE to a positive number (1 = Telegram's real limits)",
    "webhook_url": "set WEBHOOK_URL to the public https address Telegram should post updates "
    "to, e.g. https://bot.example.org/telegram (its path is where the bot listens)",
    "webhook_secret": "set WEBHOOK_SECRET to 1-256 characters of A-Z, a-z, 0-9, _ and -, "
    "e.g. the output of: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
    "http_host": "set HTTP_HOST to the address to listen on, e.g. 127.0.0.1 or 0.0.0.0",
    "http_port": "set HTTP_PORT to a TCP port for the webhook, /healthz and /metrics "
    "(0 picks a free one)",
    "inbox_workers": "set INBOX_WORKERS to how many chats' updates may run at once (1-8)",
    "webhook_max_connections": "set WEBHOOK_MAX_CONNECTIONS to how many updates Telegram may "
    "post at once (1-100; 1 keeps them in order)",
    "inbox_max_attempts": "set INBOX_MAX_ATTEMPTS to how often a failing update runs before it "
    "is parked (1-20)",
    "inbox_retry_s": "set INBOX_RETRY_S to the pause in seconds before a failed update runs "
    "again (doubled each time)",
    "outbox_lease_seconds": "set OUTBOX_LEASE_SECONDS to a number of seconds, at least 1",
    "bot_api_timeout_s": "set BOT_API_TIMEOUT_S to how many seconds a Bot API call may take "
    "to connect, send and answer (e.g. 5), or unset it for python-telegram-bot's defaults",
}

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line saying which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    # Root of a Bot API server (Telegram's when unset). Both ".../bot" and the bare root work.
    bot_api_base_url: str | None = None
    database_url: str = "sqlite+aiosqlite:///data/greengrid.db"
    timezone: str = "Asia/Shanghai"
    default_locale: LocaleName = "zh_CN"
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    rules_file: Path | None = None
    # Where photos are kept, each under its SHA-256.
    media_dir: Path = Path("data/media")
    # Multiplies Telegram's rate-limit windows; only tests and the demo change it.
    rate_limit_scale: float = Field(default=1.0, gt=0)
    # Webhook mode (`run --webhook`): where Telegram posts, and the secret it sends along.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Telegram posts one update at a time by default here, so they arrive in order (an answer
    # takes one insert); more connections trade that order for throughput.
    webhook_max_connections: int = Field(default=1, ge=1, le=100)
    # The bot's HTTP server: the webhook (in webhook mode), /healthz and /metrics (always).
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # The inbox: updates run at once (each from a different chat; 1 keeps one process in strict
    # arrival order), runs before an update is parked, first pause before a run again.
    # On PostgreSQL each worker holds a connection while its update runs (the pool has 15).
    inbox_workers: int = Field(default=1, ge=1, le=8)
    inbox_max_attempts: int = Field(default=3, ge=1, le=20)
    inbox_retry_s: float = Field(default=2.0, gt=0)
    # How long a claimed outbox row stays with a sender that stopped renewing its claim (was
    # killed): after this another process, or the restarted one, sends it.
    outbox_lease_seconds: float = Field(default=30.0, ge=1)
    # How long a Bot API call may take to connect, to send, and to be answered before it is
    # given up as timed out (and retried); unset: python-telegram-bot's defaults (5 s each).
    # getUpdates waits its long-poll timeout on top of this.
    bot_api_timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Accept the plain URLs people copy from elsewhere and pick the async driver ourselves.
        if value.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(f"unsupported database URL {value.split('://', 1)[0]!r}")
        return value

    @field_validator("bot_api_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a full https:// address")
        return value.strip()

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not _SECRET.fullmatch(value.get_secret_value().strip()):
            raise ValueError("only A-Z, a-z, 0-9, _ and - are allowed, 1 to 256 of them")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("rules_file")
    @classmethod
    def _rules_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def api_urls(self) -> tuple[str, str] | None:
        """(base_url, base_file_url) in python-telegram-bot's form, or None for Telegram's."""
        if self.bot_api_base_url is None:
            return None
        root = self.bot_api_base_url.rstrip("/").removesuffix("/bot")
        return f"{root}/bot", f"{root}/file/bot"

    def token(self) -> str:
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise ConfigError(f"BOT_TOKEN is not set: {_HINTS['bot_token']} (or run `make demo`)")
        return self.bot_token.get_secret_value().strip()

    def webhook(self) -> tuple[str, str, str]:
        """(public URL, path to listen on, secret) for webhook mode; ConfigError if unset."""
        if self.webhook_url is None:
            raise ConfigError(f"WEBHOOK_URL is not set: {_HINTS['webhook_url']}")
        if self.webhook_secret is None:
            raise ConfigError(f"WEBHOOK_SECRET is not set: {_HINTS['webhook_secret']}")
        path = urlsplit(self.webhook_url).path or "/"
        return self.webhook_url, path, self.webhook_secret.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, `.env` and ``overrides``; ConfigError on a bad value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    message = first["msg"].removeprefix("Value error, ")
    hint = _HINTS.get(field, "check the value")
    return f"{field.upper()}: {message}; {hint}"
