"""What every handler and job can reach: the services, and per update the actor and a translator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from telegram.ext import Application, CallbackContext, ExtBot

from bot.db import Database
from bot.i18n import Catalogues, Translator
from bot.rules import Rules
from bot.services.media import MediaStore
from bot.services.people import Actor
from bot.settings import Settings
from models.base import utcnow


@dataclass
class Services:
    """Built once per process by the application factory; owned by post_init/post_shutdown."""

    settings: Settings
    rules: Rules
    db: Database
    i18n: Catalogues
    media: MediaStore
    clock: Callable[[], datetime] = field(default=utcnow)
    # Set once the outbox sender runs: tells it new rows are waiting.
    wake_outbox: Callable[[], None] = field(default=lambda: None)
    # Set once the inbox processor runs: tells it updates were stored or put back in line.
    wake_inbox: Callable[[], None] = field(default=lambda: None)

    def now(self) -> datetime:
        return self.clock()

    def local(self, moment: datetime) -> datetime:
        """A stored UTC time in the configured zone, for showing to people."""
        return moment.astimezone(self.settings.zone)


SERVICES_KEY = "services"


class Context(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """The typed context: ``context.services``, ``context.actor``, ``context._``."""

    actor: Actor | None
    translator: Translator | None

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application, chat_id, user_id)
        self.actor = None
        self.translator = None

    @property
    def services(self) -> Services:
        return cast(Services, self.bot_data[SERVICES_KEY])

    @property
    def _(self) -> Translator:
        """The translator for whoever this update is from (the default locale otherwise)."""
        if self.translator is None:
            self.translator = self.services.i18n.translator(None)
        return self.translator
