"""Who is logged in: the session cookie, login and logout, and the role dependencies.

The session (Starlette's signed cookie) holds the user's id and a fingerprint of their password
hash; every request reloads the user, so a removed user, a changed role or account list, or a
new password takes effect at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.domain import Actor, ActorKind, ActorRole
from bot.storage import web_users
from bot.web.context import Ctx
from bot.web.csrf import CsrfChecked
from bot.web.passwords import verify_password
from bot.web.rendering import render

router = APIRouter()


@dataclass(frozen=True, slots=True)
class WebIdentity:
    """A logged-in dashboard user. `accounts` None: every account."""

    user_id: int
    name: str
    role: ActorRole
    accounts: frozenset[str] | None

    @property
    def is_operator(self) -> bool:
        return self.role is ActorRole.OPERATOR

    @property
    def actor(self) -> Actor:
        return Actor(ActorKind.WEB, str(self.user_id), f"web:{self.name}", self.role, self.accounts)

    def may_see(self, account: str) -> bool:
        return self.accounts is None or account in self.accounts


class LoginRequired(Exception):
    """No valid session: pages redirect to /login, scripts get 401 (see app.py)."""


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def identity(row: web_users.WebUserRow) -> WebIdentity:
    # Operators act on everything, whatever accounts their row lists.
    accounts = None if row.role is ActorRole.OPERATOR else row.accounts
    return WebIdentity(row.id, row.name, row.role, accounts)


def require_user(request: Request, ctx: Ctx) -> WebIdentity:
    cached = getattr(request.state, "user", None)
    if isinstance(cached, WebIdentity):
        return cached
    user_id = request.session.get("uid")
    if not isinstance(user_id, int):
        raise LoginRequired
    with ctx.db.session() as s:
        row = web_users.by_id(s, user_id)
    if row is None or request.session.get("pw") != _fingerprint(row.password_hash):
        request.session.clear()
        raise LoginRequired
    user = identity(row)
    request.state.user = user
    return user


def require_operator(user: Annotated[WebIdentity, Depends(require_user)]) -> WebIdentity:
    if not user.is_operator:
        raise HTTPException(403, "This page is for operators; ask one if you need it.")
    return user


CurrentUser = Annotated[WebIdentity, Depends(require_user)]
Operator = Annotated[WebIdentity, Depends(require_operator)]


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would make phishing links look like ours.
    Browsers drop tabs and newlines from a URL and read a backslash as a slash ("/", tab,
    "/evil.test" is "//evil.test" to them): a target with any of those is refused."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isprintable()
    ):
        return target
    return "/"


def start_session(request: Request, row: web_users.WebUserRow) -> None:
    # A fresh session (and CSRF token) at login: nothing set before it carries over.
    request.session.clear()
    request.session["uid"] = row.id
    request.session["pw"] = _fingerprint(row.password_hash)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    ctx: Ctx,
    _: CsrfChecked,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    name = name.strip()
    address = request.client.host if request.client else "?"
    target = _safe_next(next)
    wait = ctx.limiter.retry_after(name, address)
    if wait is not None:
        minutes = max(1, round(wait / 60))
        error = (
            f"Too many wrong passwords for {name!r} from this address. Wait about {minutes} "
            "minute(s) and try again, or ask an operator to set a new password "
            f"(`autoreply users passwd {name}`)."
        )
        return render(request, "login.html", {"next": target, "error": error}, 429)
    with ctx.db.session() as s:
        row = web_users.by_name(s, name)
    if not verify_password(row.password_hash if row else None, password) or row is None:
        ctx.limiter.failed(name, address)
        error = "Wrong name or password. Check both and try again."
        return render(request, "login.html", {"next": target, "error": error}, 401)
    ctx.limiter.succeeded(name, address)
    start_session(request, row)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request, _: CsrfChecked) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# --- one-time login links (bot/web/login_links.py) --------------------------------------------


@router.get("/login/link/{token}", response_class=HTMLResponse)
def link_page(request: Request, token: str) -> Response:
    """A button, not an instant login: chat apps fetch links for previews, and a GET that
    logged in would spend the single use on the preview."""
    return render(request, "login_link.html", {"token": token, "error": None})


@router.post("/login/link", response_class=HTMLResponse)
def link_login(
    request: Request, ctx: Ctx, _: CsrfChecked, token: Annotated[str, Form()]
) -> Response:
    with ctx.db.session() as s:
        row = web_users.use_link(s, token)
    if row is None:
        error = (
            "This login link was already used or has expired. Ask an operator for a new one "
            "(`autoreply users link NAME`), or log in with your password."
        )
        return render(request, "login_link.html", {"token": None, "error": error}, 410)
    start_session(request, row)
    return RedirectResponse("/", status_code=303)
