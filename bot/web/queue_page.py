"""The Queue page: queued drafts, the selected one in full, and the moderators' actions.

Every action is a plain form POST (the page works without JavaScript: the answer is a redirect
back with a note). static/app.js posts the same forms with `Accept: application/json` and gets
`{"ok", "message"}` with the matching status: 409 when someone else handled the draft first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.domain import AuditEntry, Outcome, QueueItem
from bot.errors import (
    AutoreplyError,
    InputError,
    InvalidStateError,
    NotFoundError,
    PermissionDeniedError,
    as_sentence,
)
from bot.storage import accounts as account_store
from bot.storage import draft_context
from bot.storage.draft_context import DraftContext
from bot.web.auth import CurrentUser, WebIdentity, wants_json
from bot.web.context import Ctx, WebContext
from bot.web.csrf import CsrfChecked
from bot.web.pages import Page
from bot.web.rendering import flash, render

router = APIRouter(prefix="/queue")
T = TypeVar("T")
LIST_LIMIT = 200
HISTORY_TURNS = 20
STATUS_BY_ERROR: tuple[tuple[type[AutoreplyError], int], ...] = (
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (InvalidStateError, 409),
    (InputError, 400),
)

AccountFilter = Annotated[str | None, Query()]


@dataclass(frozen=True, slots=True)
class Detail:
    item: QueueItem
    trail: list[AuditEntry]
    context: DraftContext


def _items(ctx: WebContext, user: WebIdentity, account: str | None) -> list[QueueItem]:
    return ctx.moderation.list_queue(user.actor, account=account or None, limit=LIST_LIMIT)


def _detail(ctx: WebContext, user: WebIdentity, draft_id: int) -> Detail:
    """The draft in full; another account's draft is a 404, as if it did not exist."""
    item, trail = ctx.moderation.show(user.actor, draft_id)
    with ctx.db.session() as s:
        context = draft_context.for_item(s, item, HISTORY_TURNS)
    return Detail(item, trail, context)


def _accounts(ctx: WebContext, user: WebIdentity) -> list[str]:
    names = None if user.accounts is None else tuple(sorted(user.accounts))
    with ctx.db.session() as s:
        return [state.name for state in account_store.states(s, names)]


def _call(work: Callable[[], T]) -> T:
    """Run a service call, turning its errors into HTTP errors with the service's message."""
    try:
        return work()
    except AutoreplyError as exc:
        raise _http_error(exc) from exc


def _http_error(exc: AutoreplyError) -> HTTPException:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return HTTPException(status, str(exc))
    return HTTPException(500, str(exc))


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    account: AccountFilter = None,
    d: Annotated[int | None, Query()] = None,
) -> Response:
    items = _call(lambda: _items(ctx, user, account))
    selected = d if d is not None else (items[0].draft_id if items else None)
    detail = None
    if selected is not None:
        try:
            detail = _detail(ctx, user, selected)
        except NotFoundError:
            flash(request, f"There is no draft #{selected} you can see.", "error")
    pending = _call(lambda: ctx.moderation.pending_sends(user.actor, account=account or None))
    return render(
        request,
        "queue/page.html",
        {
            "items": items,
            "selected": selected,
            "detail": detail,
            "account": account or "",
            "accounts": _accounts(ctx, user),
            "pending": pending,
        },
    )


@router.get("/list", response_class=HTMLResponse)
def queue_list(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    account: AccountFilter = None,
    d: Annotated[int | None, Query()] = None,
) -> Response:
    """The list alone, for the page's polling (live updates when someone else acts)."""
    items = _call(lambda: _items(ctx, user, account))
    context = {"items": items, "selected": d, "account": account or ""}
    return render(request, "queue/_list.html", context, fragment=True)


@router.get("/drafts/{draft_id}", response_class=HTMLResponse)
def draft(request: Request, user: CurrentUser, ctx: Ctx, draft_id: int) -> Response:
    """One draft's detail panel (the page loads it when the selection moves)."""
    detail = _call(lambda: _detail(ctx, user, draft_id))
    return render(request, "queue/_detail.html", {"detail": detail}, fragment=True)


# --- actions on drafts ------------------------------------------------------------------------


def _done(
    request: Request,
    ctx: WebContext,
    work: Callable[[], Outcome],
    *,
    draft_id: int | None = None,
    back: str | None = None,
) -> Response:
    """Run an action. Success: JSON for scripts, else a redirect back with a note. A failure
    is an error status with the service's message; a draft handled meanwhile says so."""
    try:
        outcome = work()
    except InvalidStateError as exc:
        message = str(exc)
        status = ctx.moderation.draft_status(draft_id) if draft_id is not None else None
        if status is not None and status != "queued":
            message = (
                f"Draft #{draft_id} was already {status} by someone else; your action was not "
                "applied. The queue is up to date now."
            )
        raise HTTPException(409, message) from exc
    except AutoreplyError as exc:
        raise _http_error(exc) from exc
    message = _message(outcome)
    if wants_json(request):
        return JSONResponse({"ok": True, "message": message, "status": outcome.status})
    flash(request, message, "ok")
    return RedirectResponse(back or _back(request), status_code=303)


def _message(outcome: Outcome) -> str:
    text = as_sentence(outcome.message)
    if outcome.outbox_id is not None and not outcome.delivered:
        text += "; the reply goes out within a few seconds."
    return text


def _back(request: Request) -> str:
    """Back to the queue with the same account filter (the next draft gets selected)."""
    account = request.query_params.get("account")
    return "/queue" + (f"?{urlencode({'account': account})}" if account else "")


Text = Annotated[str, Form()]
Optional = Annotated[str | None, Form()]


@router.post("/drafts/{draft_id}/approve")
def approve(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    _: CsrfChecked,
    draft_id: int,
    override: Optional = None,
) -> Response:
    reason = override if override and override.strip() else None
    return _done(
        request,
        ctx,
        lambda: ctx.moderation.approve(user.actor, draft_id, override=reason),
        draft_id=draft_id,
    )


@router.post("/drafts/{draft_id}/edit")
def edit(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, draft_id: int, text: Text
) -> Response:
    return _done(
        request, ctx, lambda: ctx.moderation.edit(user.actor, draft_id, text), draft_id=draft_id
    )


@router.post("/drafts/{draft_id}/reply")
def reply(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, draft_id: int, text: Text
) -> Response:
    """A moderator's own reply, as the account (a handed-off chat's messages wait for one)."""
    return _done(
        request, ctx, lambda: ctx.moderation.reply(user.actor, draft_id, text), draft_id=draft_id
    )


@router.post("/drafts/{draft_id}/reject")
def reject(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    _: CsrfChecked,
    draft_id: int,
    reason: Optional = None,
) -> Response:
    why = reason.strip() if reason and reason.strip() else None
    return _done(
        request,
        ctx,
        lambda: ctx.moderation.reject(user.actor, draft_id, reason=why),
        draft_id=draft_id,
    )


# --- actions on chats, users and sends --------------------------------------------------------


@router.post("/chats/handback")
def handback(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, account: Text, chat_id: Text
) -> Response:
    """Give a handed-off chat back to the bot."""
    return _done(request, ctx, lambda: ctx.moderation.hand_back(user.actor, account, chat_id))


@router.post("/chats/handoff")
def handoff(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, account: Text, chat_id: Text
) -> Response:
    """Take a chat from the bot: its messages wait for a person's own reply."""
    return _done(request, ctx, lambda: ctx.moderation.hand_off(user.actor, account, chat_id))


@router.post("/users/ban")
def ban(
    request: Request,
    user: CurrentUser,
    ctx: Ctx,
    _: CsrfChecked,
    account: Text,
    user_id: Text,
    reason: Optional = None,
) -> Response:
    why = reason.strip() if reason and reason.strip() else None
    return _done(request, ctx, lambda: ctx.moderation.ban(user.actor, account, user_id, reason=why))


@router.post("/sends/{outbox_id}/cancel")
def cancel_send(
    request: Request, user: CurrentUser, ctx: Ctx, _: CsrfChecked, outbox_id: int
) -> Response:
    """Stop a reply still waiting out its account's send delay."""
    return _done(request, ctx, lambda: ctx.moderation.cancel_send(user.actor, outbox_id))


PAGE = Page(path="/queue", label="Queue", router=router)
