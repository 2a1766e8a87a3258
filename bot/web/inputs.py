"""Request checks every route shares: what no page can store or search for.

PostgreSQL text cannot hold a NUL character: a name, filter or reply carrying one would
reach the database and fail there as a 500. Refusing it up front (an app-wide dependency,
bot/web/app.py) gives the person a 400 that says what to fix, on both backends alike.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

NUL = "\x00"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def reject_nul(request: Request) -> None:
    values = [*request.path_params.values(), *request.query_params.values()]
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        # Starlette keeps the parsed form on the request: the route reads the same one.
        values += [v for v in (await request.form()).values() if isinstance(v, str)]
    if any(NUL in str(value) for value in values):
        raise HTTPException(
            400,
            "The request holds a NUL character (\\0), which cannot be stored or searched for. "
            "Remove it (it often comes from a pasted binary text) and try again.",
        )
