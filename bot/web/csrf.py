"""CSRF protection: a random token per session, required on every POST.

Forms send it as the hidden `csrf_token` field (`{{ csrf_field() }}`), scripts as the
`X-CSRF-Token` header (static/app.js reads it from the page's meta tag). SameSite cookies
already stop most cross-site posts; the token also covers older browsers and same-site hosts.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request

SESSION_KEY = "csrf"
HEADER = "X-CSRF-Token"
FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The session's token, made on first use (the login page makes it before any login)."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


async def check_csrf(request: Request) -> None:
    expected = request.session.get(SESSION_KEY)
    sent = request.headers.get(HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            value = (await request.form()).get(FIELD)
            sent = value if isinstance(value, str) else None
    # Compared as bytes: compare_digest raises TypeError on non-ASCII str (a 500, not a 403).
    if (
        not isinstance(expected, str)
        or not sent
        or not secrets.compare_digest(expected.encode(), sent.encode())
    ):
        raise HTTPException(
            403,
            "The form's security token is missing or out of date (an old tab, or you logged "
            "in again elsewhere). Reload the page and try again.",
        )


CsrfChecked = Annotated[None, Depends(check_csrf)]
