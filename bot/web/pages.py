"""A dashboard page: its router and its entry in the navigation bar."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter


@dataclass(frozen=True, slots=True)
class Page:
    """`operator_only` hides the nav entry from moderators; its routes must still require the
    `Operator` dependency (bot/web/auth.py), since hiding a link protects nothing."""

    path: str
    label: str
    router: APIRouter
    operator_only: bool = False
