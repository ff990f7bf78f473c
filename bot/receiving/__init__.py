"""Receiving: the durable intake. Updates are written to the inbox before Telegram is told they
arrived (polling or webhook), then processed from there (`bot/runtime.py` wires it)."""
