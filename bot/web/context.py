"""What every route can reach: the database, the moderation service, settings, templates.

One `WebContext` per app, kept in `app.state.web`; routes take it with the `Ctx` dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from bot.config import Settings
from bot.moderation import ModerationService
from bot.storage.db import Database
from bot.web.pages import Page
from bot.web.ratelimit import LoginLimiter

# None: ready; else the reason it is not (e.g. "loading the model").
Readiness = Callable[[], str | None]


class MetricsSource(Protocol):
    """What /metrics needs (bot/web/metrics.py's `Metrics`): the exposition and its type."""

    def render(self) -> tuple[bytes, str]: ...


@dataclass(frozen=True, slots=True)
class WebContext:
    db: Database
    moderation: ModerationService
    settings: Settings
    templates: Jinja2Templates
    pages: tuple[Page, ...]
    limiter: LoginLimiter
    ready: Readiness
    metrics: MetricsSource | None


def web_context(request: Request) -> WebContext:
    context: WebContext = request.app.state.web
    return context


Ctx = Annotated[WebContext, Depends(web_context)]
