"""The topics fit as a scheduled job: cron trigger, once at a time, a bad line named."""

from __future__ import annotations

import asyncio

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.config import Settings
from bot.errors import ConfigError
from bot.jobs import add_topics_fit


def test_the_fit_is_registered_hourly_and_once_at_a_time() -> None:
    async def scenario() -> None:
        scheduler = AsyncIOScheduler()
        scheduler.start()

        async def job() -> None:
            return None

        add_topics_fit(scheduler, job, Settings().topics_cron)
        registered = scheduler.get_job("topics_fit")
        assert registered is not None
        assert registered.coalesce is True and registered.max_instances == 1
        assert isinstance(registered.trigger, CronTrigger)
        assert registered.next_run_time.minute == 15
        scheduler.shutdown(wait=False)

    asyncio.run(scenario())


def test_a_bad_cron_line_names_its_setting() -> None:
    async def scenario() -> None:
        scheduler = AsyncIOScheduler()

        async def job() -> None:
            return None

        with pytest.raises(ConfigError, match="AUTOREPLY_TOPICS_CRON='hourly'"):
            add_topics_fit(scheduler, job, "hourly")

    asyncio.run(scenario())
