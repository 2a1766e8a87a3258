"""The Conversations page: search stored messages, read a whole thread, and act on its chat
(hand it to people or back to the bot) and its people (ban, unban).

The reader sees only their accounts' messages; another account's thread is a 404, as if it did
not exist. Actions go through the moderation service as the web user (audited there); a
refusal comes back as a note on the thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.domain import Outcome, Sentiment
from bot.errors import AutoreplyError, as_sentence
from bot.storage import conversation_search as search
from bot.web.auth import CurrentUser, WebIdentity
from bot.web.context import Ctx, WebContext
from bot.web.csrf import CsrfChecked
from bot.web.pages import Page
from bot.web.rendering import flash, render

router = APIRouter(prefix="/conversations")
PAGE_SIZE = 50
SENTIMENTS = tuple(s.value for s in Sentiment)
Param = Annotated[str | None, Query()]


def _date(value: str | None, field: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{field} {value!r} is not a date; use YYYY-MM-DD (or the date picker).")
        return None


def _filters(params: dict[str, str | None], errors: list[str]) -> search.Filters:
    """The search form as filters; a bad value is left out with a note saying what to fix."""
    since = _date(params["since"], "From", errors)
    until = _date(params["until"], "To", errors)
    sentiment = params["sentiment"] or None
    if sentiment is not None and sentiment not in SENTIMENTS:
        errors.append(f"Sentiment {sentiment!r} is unknown; pick one of {', '.join(SENTIMENTS)}.")
        sentiment = None
    return search.Filters(
        account=params["account"] or None,
        user=params["user"] or None,
        chat=params["chat"] or None,
        intent=params["intent"] or None,
        sentiment=sentiment,
        text=params["q"] or None,
        since=datetime.combine(since, datetime.min.time(), UTC) if since else None,
        # "To" is inclusive for people: everything before the next midnight.
        until=datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC)
        if until
        else None,
    )


@router.get("", response_class=HTMLResponse)
def conversations(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    account: Param = None,
    user_q: Annotated[str | None, Query(alias="user")] = None,
    chat: Param = None,
    intent: Param = None,
    sentiment: Param = None,
    q: Param = None,
    since: Param = None,
    until: Param = None,
    before: Annotated[int | None, Query()] = None,
) -> Response:
    params = {
        "account": account,
        "user": user_q,
        "chat": chat,
        "intent": intent,
        "sentiment": sentiment,
        "q": q,
        "since": since,
        "until": until,
    }
    errors: list[str] = []
    filters = _filters(params, errors)
    with ctx.db.session() as s:
        found = search.search(s, filters, user.accounts, before=before, limit=PAGE_SIZE)
        accounts = search.account_names(s, user.accounts)
    kept = {key: value for key, value in params.items() if value}
    return render(
        request,
        "conversations.html",
        {
            "params": {key: value or "" for key, value in params.items()},
            "errors": errors,
            "page": found,
            "accounts": accounts,
            "sentiments": SENTIMENTS,
            "paged": before is not None,
            "first_url": "/conversations" + (f"?{urlencode(kept)}" if kept else ""),
            "older_url": f"/conversations?{urlencode({**kept, 'before': found.older})}"
            if found.older is not None
            else None,
        },
    )


@router.get("/{conversation_id}", response_class=HTMLResponse)
def conversation(request: Request, user: CurrentUser, ctx: Ctx, conversation_id: int) -> Response:
    with ctx.db.session() as s:
        found = search.thread(s, conversation_id, user.accounts)
    if found is None:
        raise HTTPException(404, _missing(conversation_id))
    return render(request, "conversation_thread.html", {"thread": found})


def _missing(conversation_id: int) -> str:
    return (
        f"There is no conversation #{conversation_id} you can see. Search for it on the "
        "Conversations page."
    )


# --- actions on the chat and its people -------------------------------------------------------


def _act(
    request: Request,
    ctx: WebContext,
    user: WebIdentity,
    conversation_id: int,
    work: Callable[[str, str], Outcome],
) -> Response:
    """Run a chat action on the conversation's (account, chat); the outcome or the refusal
    becomes a note on the thread."""
    with ctx.db.session() as s:
        where = search.locate(s, conversation_id, user.accounts)
    if where is None:
        raise HTTPException(404, _missing(conversation_id))
    try:
        outcome = work(*where)
    except AutoreplyError as exc:
        flash(request, as_sentence(str(exc)), "error")
    else:
        flash(request, outcome.message, "ok")
    return RedirectResponse(f"/conversations/{conversation_id}", status_code=303)


@router.post("/{conversation_id}/handoff")
def hand_off(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, conversation_id: int
) -> Response:
    return _act(
        request,
        ctx,
        user,
        conversation_id,
        lambda account, chat: ctx.moderation.hand_off(user.actor, account, chat),
    )


@router.post("/{conversation_id}/handback")
def hand_back(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, conversation_id: int
) -> Response:
    return _act(
        request,
        ctx,
        user,
        conversation_id,
        lambda account, chat: ctx.moderation.hand_back(user.actor, account, chat),
    )


@router.post("/{conversation_id}/ban")
def ban(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    _: CsrfChecked,
    conversation_id: int,
    user_id: Annotated[str, Form()],
    reason: Annotated[str | None, Form()] = None,
) -> Response:
    return _act(
        request,
        ctx,
        user,
        conversation_id,
        lambda account, _chat: ctx.moderation.ban(
            user.actor, account, user_id, reason=(reason or "").strip() or None
        ),
    )


@router.post("/{conversation_id}/unban")
def unban(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    _: CsrfChecked,
    conversation_id: int,
    user_id: Annotated[str, Form()],
) -> Response:
    return _act(
        request,
        ctx,
        user,
        conversation_id,
        lambda account, _chat: ctx.moderation.unban(user.actor, account, user_id),
    )


PAGE = Page(path="/conversations", label="Conversations", router=router)
