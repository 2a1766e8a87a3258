"""The key that signs session cookies.

AUTOREPLY_WEB_SECRET when set; otherwise a random key made once and kept in
`web_secret_file` (mode 0600), so logins survive a restart. Several processes serving the
dashboard must share one key: set AUTOREPLY_WEB_SECRET for them.
"""

from __future__ import annotations

import os
import secrets

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
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        # O_EXCL: two processes starting at once must not each write their own key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read or create the session key file {path} ({exc}); fix its permissions, "
            "point AUTOREPLY_WEB_SECRET_FILE elsewhere, or set AUTOREPLY_WEB_SECRET"
        ) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
