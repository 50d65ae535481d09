"""The one list of background jobs, run by APScheduler in a thread pool.

Every job runs one instance at a time and coalesces missed runs: a slow Prometheus must not pile up
evaluation cycles behind each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import undefined

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    id: str
    func: Callable[[], object]
    every_seconds: float
    run_at_start: bool = False  # first run right away rather than one interval after start-up


def build_scheduler(jobs: list[Job]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        timezone="UTC",
    )
    for job in jobs:
        scheduler.add_job(
            job.func,
            "interval",
            seconds=job.every_seconds,
            id=job.id,
            name=job.id,
            replace_existing=True,
            next_run_time=datetime.now(UTC) if job.run_at_start else undefined,
        )
    return scheduler
