"""Logging set-up: the one place that configures handlers and levels."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

# Bot tokens look like 123456789:AA...; they appear in request URLs (/bot<token>/method).
_TOKEN = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}")


class RedactSecrets(logging.Filter):
    """Masks the configured secrets, and anything shaped like a bot token, in every record,
    whatever library logged it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _TOKEN.sub("<token>", message)
        for secret in self._secrets:
            redacted = redacted.replace(secret, "<secret>")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL, bot token included, at INFO.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
