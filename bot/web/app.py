"""The app factory: middleware, error pages, the static files and every page's router.

To add a page: a module with an APIRouter whose routes take `CurrentUser` or `Operator`
(bot/web/auth.py), `Ctx` (bot/web/context.py) and, on POSTs, `CsrfChecked` (bot/web/csrf.py),
rendering templates that extend base.html; then append its `Page` to PAGES below.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from bot.config import Settings
from bot.moderation import ModerationService
from bot.storage.db import Database
from bot.web import adapters_page, analytics_page, auth, conversations_page, health, queue_page
from bot.web.context import MetricsSource, Readiness, WebContext
from bot.web.headers import SecurityHeaders
from bot.web.inputs import reject_nul
from bot.web.metrics import build_metrics
from bot.web.pages import Page
from bot.web.ratelimit import LoginLimiter
from bot.web.rendering import render
from bot.web.secret import session_secret

HERE = Path(__file__).parent
PAGES: tuple[Page, ...] = (
    queue_page.PAGE,
    conversations_page.PAGE,
    adapters_page.PAGE,
    analytics_page.PAGE,
)
SESSION_COOKIE = "autoreply_session"


def create_app(
    settings: Settings,
    db: Database,
    moderation: ModerationService,
    *,
    metrics: MetricsSource | None = None,
    ready: Readiness | None = None,
    secret: str | None = None,
    pages: tuple[Page, ...] = PAGES,
) -> FastAPI:
    """The dashboard over `db`. `ready` says why the process cannot serve yet (None: ready;
    the service passes one that waits for the model); `metrics` defaults to the database's
    figures (bot/web/metrics.py)."""
    app = FastAPI(
        title="autoreply",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(reject_nul)],
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    app.state.web = WebContext(
        db=db,
        moderation=moderation,
        settings=settings,
        templates=templates,
        pages=pages,
        limiter=LoginLimiter(settings.web_login_max_failures, settings.web_login_window_s),
        ready=ready or (lambda: None),
        metrics=metrics if metrics is not None else build_metrics(db),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret or session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=int(settings.web_session_hours * 3600),
        # Lax, not Strict: a link to the dashboard from a chat or a mail must not arrive
        # without the cookie (the login page would then replace the session). Cross-site
        # POSTs still carry no cookie, and every POST needs the CSRF token anyway.
        same_site="lax",
        https_only=settings.web_cookie_secure,
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(auth.router)
    app.include_router(health.router)
    for page in pages:
        app.include_router(page.router)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse(pages[0].path if pages else "/login", status_code=303)

    @app.exception_handler(auth.LoginRequired)
    def login_required(request: Request, _: Exception) -> Response:
        if auth.wants_json(request):
            return JSONResponse({"ok": False, "message": "Log in again."}, status_code=401)
        return RedirectResponse(auth.login_url(request), status_code=303)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: Exception) -> Response:
        # FastAPI's own answer is a JSON dump of the validator's errors, even to a browser.
        assert isinstance(exc, RequestValidationError)
        return error_response(request, 400, invalid_message(exc))

    return app


def invalid_message(exc: RequestValidationError) -> str:
    """Which fields were wrong, in words: 'draft_id (in the path): Input should be a valid
    integer'."""
    parts = []
    for error in exc.errors()[:3]:
        where = [str(part) for part in error.get("loc", ())]
        field = where[-1] if where else "?"
        place = f" (in the {where[0]})" if len(where) > 1 else ""
        parts.append(f"{field}{place}: {error.get('msg', 'not valid')}")
    return (
        f"This request is not valid: {'; '.join(parts)}. Go back, correct it and try again "
        "(or reload the page if it came from an old tab)."
    )


def error_response(request: Request, status_code: int, message: str) -> Response:
    """JSON for scripts, a small page with a way back for plain form posts."""
    if auth.wants_json(request):
        return JSONResponse({"ok": False, "message": message}, status_code=status_code)
    return render(request, "error.html", {"message": message, "status": status_code}, status_code)
