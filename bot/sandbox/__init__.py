"""The local Telegram stand-in: a Bot API server over real HTTP with a simulated world."""

from bot.sandbox.errors import ApiError
from bot.sandbox.faults import FaultKind
from bot.sandbox.ratecheck import LoggedRequest
from bot.sandbox.server import Sandbox
from bot.sandbox.world import CallbackAnswer, SentMessage, SimChat, SimUser, tiny_png

__all__ = [
    "ApiError",
    "CallbackAnswer",
    "FaultKind",
    "LoggedRequest",
    "Sandbox",
    "SentMessage",
    "SimChat",
    "SimUser",
    "tiny_png",
]
