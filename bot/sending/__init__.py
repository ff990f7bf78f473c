"""Everything that leaves the bot for Telegram goes through here."""

from bot.sending.ratelimit import ChatRateLimiter, SendStats

__all__ = ["ChatRateLimiter", "SendStats"]
