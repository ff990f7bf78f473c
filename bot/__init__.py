"""greengrid: a Telegram bot for grassroots eco-environment work groups."""

import os

# Opt in now to python-telegram-bot's coming behaviour: durations (RetryAfter.retry_after and
# friends) as timedelta, without a deprecation warning on every 429.
os.environ.setdefault("PTB_TIMEDELTA", "true")
