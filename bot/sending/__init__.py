"""Everything that leaves the bot for Telegram goes through here."""
