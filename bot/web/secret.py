"""The key that signs session cookies.

AUTOREPLY_WEB_SECRET when set; otherwise a random key made once and kept in
`web_secret_file` (mode 0600), so logins survive a restart. Several processes serving the
dashboard must share one key: set AUTOREPLY_WEB_SECRET for them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from bot.config import Settings
from bot.errors import ConfigError

MIN_SECRET_CHARS = 32


def session_secret(settings: Settings) -> str:
    if settings.web_secret is not None:
        value = settings.web_secret.get_secret_value()
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"AUTOREPLY_WEB_SECRET has {len(value)} characters; use at least "
                f"{MIN_SECRET_CHARS} random ones (python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        return value
    path = settings.web_secret_file
    try:
        if not path.is_file():
            _create(path)
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read or create the session key file {path} ({exc}); fix its permissions, "
            "point AUTOREPLY_WEB_SECRET_FILE elsewhere, or set AUTOREPLY_WEB_SECRET"
        ) from exc
    if len(value) < MIN_SECRET_CHARS:
        # An empty or cut-off file would sign sessions with a guessable key.
        raise ConfigError(
            f"the session key file {path} holds {len(value)} characters, fewer than "
            f"{MIN_SECRET_CHARS}; delete it (a new key is made at the next start; everyone "
            "logs in again) or set AUTOREPLY_WEB_SECRET"
        )
    return value


def _create(path: Path) -> None:
    """Write a new key where no reader can see it half-written: into a private temporary
    file, then linked into place. When two processes start at once, the first link wins and
    both read that key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the name points at it
        # Another process linked its key first: theirs is the one everybody reads.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
