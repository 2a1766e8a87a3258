"""/healthz (the process answers), /readyz (it can serve) and /metrics (Prometheus).

No login: probes and scrapers have none. The dashboard binds 127.0.0.1 by default; put it
behind a proxy that limits /metrics if it must listen wider.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from bot.web.context import Ctx

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(ctx: Ctx) -> JSONResponse:
    def database_reachable() -> str | None:
        try:
            with ctx.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return f"database unreachable: {type(exc).__name__}"
        return None

    reason = await run_in_threadpool(database_reachable) or ctx.ready()
    if reason is not None:
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
def metrics(ctx: Ctx) -> Response:
    if ctx.metrics is None:
        return Response("metrics are not available in this build\n", 404, media_type="text/plain")
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)
