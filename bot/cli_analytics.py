"""`autoreply analytics topics`: fit topics now, without waiting for the scheduled job."""

from __future__ import annotations

from typing import Annotated

import typer

analytics_app = typer.Typer(help="Analytics: topics people write about.", no_args_is_help=True)


@analytics_app.command("topics")
def topics(
    account: Annotated[
        str | None,
        typer.Option("--account", help="Only this account (default: every configured one)."),
    ] = None,
) -> None:
    """Fit topics on each account's recent inbound messages and store the result (the
    dashboard shows the newest). Runs beside the service's own hourly fit without a lease."""
    from bot.analytics.topics_job import TopicsJob
    from bot.cli import _config
    from bot.errors import NotFoundError
    from bot.storage import migrate
    from bot.storage import topics as topic_store
    from bot.storage.db import Database

    settings, accounts = _config()
    names = [accounts.get(account).name] if account else list(accounts.names)
    migrate.ensure_schema(settings.database_url)
    db = Database(settings.database_url)
    job = TopicsJob(
        db,
        names,
        window_days=settings.topics_window_days,
        max_topics=settings.topics_max,
        lease_s=settings.topics_lease_s,
    )
    try:
        for name in names:
            try:
                summary = job.fit(name)
            except NotFoundError:
                if account:
                    raise
                typer.echo(f"{name}: no messages stored yet (the service has not served it)")
                continue
            typer.echo(
                f"{name}: {summary.topics} topics over {summary.messages} messages of the last "
                f"{settings.topics_window_days} days (run {summary.run_id})"
            )
            with db.session() as s:
                report = topic_store.latest(s, summary.account_id)
            for topic in report.topics if report else ():
                trend = "new" if topic.trend is None else f"{topic.trend:+.1f} pts"
                typer.echo(f"  {topic.size:>5}  {trend:>10}  {', '.join(topic.words[:6])}")
    finally:
        db.dispose()
