"""What a failed photo download means, and how long a refused one waits (pure rules)."""

from datetime import timedelta

import pytest
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, TimedOut

from bot.services.media import MAX_DOWNLOAD_ATTEMPTS, retry_delay
from jobs.media import Failure, failure_of


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (BadRequest("File is too big"), Failure.never),
        (BadRequest("Wrong file_id or the file is temporarily unavailable"), Failure.refused),
        (BadRequest("Invalid file_id"), Failure.refused),
        (InvalidToken("Not Found"), Failure.refused),  # a file path the server forgot (404)
        (Forbidden("Forbidden"), Failure.refused),
        (NetworkError("connection reset"), Failure.network),
        (TimedOut(), Failure.network),
    ],
)
def test_failure_of(error: Exception, failure: Failure) -> None:
    assert failure_of(error) is failure  # type: ignore[arg-type]


def test_refused_downloads_wait_longer_each_time() -> None:
    waits = [retry_delay(n) for n in range(1, MAX_DOWNLOAD_ATTEMPTS)]
    assert waits == [timedelta(minutes=m) for m in (1, 4, 16, 64, 256)]
