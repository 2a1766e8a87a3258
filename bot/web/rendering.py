"""Rendering a page: the template plus what base.html needs (user, nav, CSRF, notes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape

from bot.web.context import WebContext
from bot.web.csrf import FIELD, csrf_token

FLASH_KEY = "flash"


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A note shown once on the next page rendered (after a redirect)."""
    notes = list(request.session.get(FLASH_KEY, []))
    notes.append([kind, text])
    request.session[FLASH_KEY] = notes[-5:]


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    status_code: int = 200,
    *,
    fragment: bool = False,
) -> HTMLResponse:
    """A page, or with `fragment` a piece of one that scripts fetch (it leaves the notes
    waiting for the next whole page: a poll must not swallow them)."""
    web: WebContext = request.app.state.web
    user = getattr(request.state, "user", None)
    token = csrf_token(request)
    nav = [
        page
        for page in web.pages
        if user is not None and (not page.operator_only or user.is_operator)
    ]
    base: dict[str, Any] = {
        "user": user,
        "nav": nav,
        "csrf_token": token,
        "csrf_field": lambda: Markup(
            f'<input type="hidden" name="{FIELD}" value="{escape(token)}">'
        ),
        "flashes": [] if fragment else [tuple(n) for n in request.session.pop(FLASH_KEY, [])],
    }
    return web.templates.TemplateResponse(
        request, template, {**base, **(context or {})}, status_code=status_code
    )
