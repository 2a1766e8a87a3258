"""The Analytics page: one account's plots over the last 7, 30 or 90 days, and its newest
topics.

A reader sees only their accounts; another or unknown account is a 404, as if it did not
exist. Days are counted in the account's business-hours time zone (UTC without one). The plots
are inline SVG (nothing fetched, works offline), cached a minute per account and range
(bot/web/analytics_view.py); topics come from the scheduled fit (bot/analytics/topics_job.py),
never fitted on page load.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from bot.storage import accounts as account_store
from bot.storage import topics as topic_store
from bot.storage.conversation_search import account_names
from bot.web.analytics_view import (
    AnalyticsCache,
    age,
    analytics_cache,
    build_figures,
    day_range,
    zone_of,
)
from bot.web.auth import CurrentUser
from bot.web.context import Ctx
from bot.web.pages import Page
from bot.web.rendering import render

router = APIRouter(prefix="/analytics")
RANGES = (7, 30, 90)
DEFAULT_DAYS = 30
Cache = Annotated[AnalyticsCache, Depends(analytics_cache)]


@router.get("", response_class=HTMLResponse)
def analytics(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    cache: Cache,
    account: Annotated[str | None, Query()] = None,
    days: Annotated[str, Query()] = str(DEFAULT_DAYS),
) -> Response:
    if days not in {str(n) for n in RANGES}:
        raise HTTPException(400, f"Show 7, 30 or 90 days, not {days!r}: pick one of the ranges.")
    with ctx.db.session() as s:
        names = account_names(s, user.accounts)
    if account is None and names:
        account = names[0]
    if account is None:
        return render(request, "analytics.html", {"names": names, "account": None})
    if account not in names:
        raise HTTPException(
            404, f"No account named {account!r} that you may see: pick one from the list."
        )
    tz = zone_of(request, ctx.settings, account)
    period = day_range(int(days), tz)
    figures = cache.get((account, period), lambda: build_figures(ctx.db, account, period))
    with ctx.db.session() as s:
        state = account_store.by_name(s, account)
        topics = topic_store.latest(s, state.id) if state is not None else None
    return render(
        request,
        "analytics.html",
        {
            "names": names,
            "account": account,
            "days": int(days),
            "ranges": RANGES,
            "tz": tz.key,
            "figures": figures,
            # Safe to inline: matplotlib escapes every text it writes into the SVG.
            "svgs": [Markup(svg) for svg in figures.plots],
            "topics": topics,
            "fitted_ago": age(topics.fitted_at) if topics else None,
            "cache_s": int(cache.ttl_s),
        },
    )


PAGE = Page(path="/analytics", label="Analytics", router=router, operator_only=False)
