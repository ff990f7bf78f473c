"""The Bot API client the application uses: python-telegram-bot's ExtBot, with request timeouts
from the settings and callback answers that never fail an update.

Answering a button tap only stops the spinner (or shows a toast). Telegram forgets a query
after a while and accepts one answer per query; a timed-out answer that did arrive, retried,
is refused as "too old". Neither is worth running the update again for: by then the tap's work
is done and committed, and a second run would find it done and tell nobody what happened.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram.error import TelegramError
from telegram.ext import ExtBot

log = logging.getLogger(__name__)


class GreengridBot(ExtBot[None]):
    async def answer_callback_query(self, *args: Any, **kwargs: Any) -> bool:
        try:
            return await super().answer_callback_query(*args, **kwargs)
        except TelegramError as exc:  # stale, or the network still failing after the retries
            log.info("callback answer not delivered: %s", exc)
            return False
