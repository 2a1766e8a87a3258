"""The Adapters page (operators only): every registered version per account and kind, its
metrics and the eval gate's comparison, with Promote and Rollback.

Both buttons call the registry functions `autoreply adapters promote|rollback` call, with the
web user as the actor, so the audit trail names them; a running service picks the switch up by
polling the registry. Importing training.registry is cheap (no torch): keep it that way here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.errors import AutoreplyError, InvalidStateError, as_sentence
from bot.web.auth import Operator
from bot.web.context import Ctx
from bot.web.csrf import CsrfChecked
from bot.web.pages import Page
from bot.web.rendering import flash, render
from training import registry

router = APIRouter(prefix="/adapters")
# The figures worth a column, in the order people read them (the eval gate stores these).
HEADLINE = (
    "perplexity",
    "fallback_rate",
    "blocked_share",
    "macro_f1",
    "macro_recall",
    "false_positive_rate",
    "val_loss",
)


@dataclass(frozen=True, slots=True)
class EvalRow:
    metric: str
    baseline: Any
    candidate: Any


@dataclass(frozen=True, slots=True)
class EvalView:
    """The stored gate verdict (`adapters eval`) as a small table."""

    baseline: str
    promote: bool
    reason: str
    rows: list[EvalRow]


@dataclass(frozen=True, slots=True)
class VersionView:
    version: registry.AdapterVersion
    headline: list[tuple[str, Any]]
    eval: EvalView | None
    refusal: str | None  # the gate kept the active one over this: promoting needs force


@dataclass(frozen=True, slots=True)
class Group:
    account: str
    kind: str
    versions: list[VersionView]  # newest first
    active: str | None


def _eval(metrics: dict[str, Any]) -> EvalView | None:
    gate = metrics.get("eval")
    if not isinstance(gate, dict):
        return None
    candidate = gate.get("candidate") or {}
    baseline = gate.get("baseline_metrics") or {}
    keys = sorted(
        key
        for key in set(candidate) | set(baseline)
        if not isinstance(candidate.get(key, baseline.get(key)), dict)  # per-class: too wide
    )
    return EvalView(
        baseline=str(gate.get("baseline", "?")),
        promote=bool(gate.get("promote")),
        reason=str(gate.get("reason", "")),
        rows=[EvalRow(key, baseline.get(key), candidate.get(key)) for key in keys],
    )


def _groups(versions: list[registry.AdapterVersion]) -> list[Group]:
    grouped: dict[tuple[str, str], list[VersionView]] = {}
    for version in versions:
        views = grouped.setdefault((version.account or "-", version.kind), [])
        views.append(
            VersionView(
                version=version,
                headline=[(k, version.metrics[k]) for k in HEADLINE if k in version.metrics],
                eval=_eval(version.metrics),
                refusal=registry.gate_refusal(version),
            )
        )
    order = {kind: n for n, kind in enumerate(registry.KINDS)}
    return [
        Group(
            account,
            kind,
            views,
            next((v.version.name for v in views if v.version.status == "active"), None),
        )
        for (account, kind), views in sorted(
            grouped.items(), key=lambda item: (item[0][0], order.get(item[0][1], 99))
        )
    ]


@router.get("", response_class=HTMLResponse)
def adapters(request: Request, user: Operator, ctx: Ctx) -> Response:
    groups = _groups(registry.versions(ctx.db))
    return render(request, "adapters.html", {"groups": groups, "kinds": registry.KINDS})


def _act(request: Request, work: Callable[[], str]) -> Response:
    try:
        flash(request, work(), "ok")
    except AutoreplyError as exc:
        flash(request, as_sentence(str(exc)), "error")
    return RedirectResponse("/adapters", status_code=303)


Note = Annotated[str | None, Form()]


@router.post("/{name}/promote")
def promote(
    request: Request,
    user: Operator,
    ctx: Ctx,
    _: CsrfChecked,
    name: str,
    note: Note = None,
    force: Annotated[bool, Form()] = False,
) -> Response:
    def work() -> str:
        refusal = registry.gate_refusal(registry.get(ctx.db, name))
        why = (note or "").strip() or None
        if refusal is not None and not (force and why):
            raise InvalidStateError(
                f"The eval gate kept the active adapter over {name}: {refusal}. Train a better "
                "one, or tick 'promote anyway' and give a reason."
            )
        promoted = registry.promote(ctx.db, name, user.actor, why)
        return (
            f"{promoted.name} is now {promoted.account}'s active {promoted.kind} adapter; a "
            f"running service switches within {ctx.settings.registry_poll_s:g} s."
        )

    return _act(request, work)


@router.post("/rollback")
def rollback(
    request: Request,
    user: Operator,
    ctx: Ctx,
    _: CsrfChecked,
    account: Annotated[str, Form()],
    kind: Annotated[str, Form()],
    note: Note = None,
) -> Response:
    def work() -> str:
        restored = registry.rollback(
            ctx.db, account, kind, user.actor, (note or "").strip() or None
        )
        if restored is None:
            fallback = "the base model" if kind == "reply" else "the lexical rules"
            return f"Rolled back: {account} has no active {kind} adapter now and uses {fallback}."
        return f"Rolled back: {account}'s active {kind} adapter is {restored.name} again."

    return _act(request, work)


PAGE = Page(path="/adapters", label="Adapters", router=router, operator_only=True)
