"""The freeze watch on both databases: a budget that falls below `freeze_below` freezes promotions and is
announced once; hovering between the two marks changes nothing; climbing above `unfreeze_above` lifts it,
announced once more. The budgets are written as evaluations, so each step's expected state is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from app.config import load_file_config
from app.gates import jobs
from app.gates import service as gates
from app.outbox import OutboxRow
from app.services import build_services
from app.slo.models import SloStatus
from app.slo.spec import load_specs
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.servers import wait_until

SPEC = """version: "prometheus/v1"
service: "ranker"
labels: {model: "ranker", environment: "prod"}
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(errors_total[{{.window}}]))
        total_query: sum(rate(requests_total[{{.window}}]))
"""
CONFIG = """channels: {ranker: C0RANKER}
models:
  ranker:
    environments:
      prod:
        gate: {freeze_below: 0.25, unfreeze_above: 0.30}
"""


def test_a_freeze_is_announced_once_each_way_and_never_flaps(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "ranker.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "sloguard.yaml").write_text(CONFIG, encoding="utf-8")
    fake = FakeSlack().__enter__()
    slack = {
        "slack_bot_token": "xoxb-1-2-freeze",
        "slack_signing_secret": "freeze-signing",
        "slack_api_url": fake.api_url(),
    }
    settings = make_settings(tmp_path, database_url=database_url, **slack)
    services = build_services(
        settings, load_file_config(settings.config_file), load_specs([settings.slo_dir])
    )
    services.start_worker("test")
    start = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    # budget left at each cycle, and whether promotions are frozen after it (worked out from the marks)
    story = [(0.40, False), (0.26, False), (0.24, True), (0.27, True), (0.29, True), (0.22, True),
             (0.31, False), (0.28, False), (0.26, False), (0.20, True)]  # fmt: skip
    try:
        for step, (left, frozen) in enumerate(story):
            at = start + timedelta(minutes=step)
            with Session(services.engine) as session:
                session.add(
                    SloStatus(
                        slo_id="ranker-availability", evaluated_at=at, state="ok", budget_remaining=left
                    )
                )
                session.commit()
            jobs.watch_freezes(services, now=at)
            with Session(services.engine) as session:
                assert gates.frozen_now(session, "ranker", "prod") is frozen, (step, left)
        with Session(services.engine) as session:
            said = [
                row.payload["text"]
                for row in session.exec(
                    select(OutboxRow).where(OutboxRow.kind == "slack.announce").order_by(OutboxRow.id)
                )
            ]
        assert len(said) == 3, said  # into the freeze at 24 %, out at 31 %, in again at 20 %
        assert (
            said[0].startswith("Release freeze: promotions of ranker into prod stop") and "24.0%" in said[0]
        )
        assert said[1].startswith("Release freeze over") and "31.0%" in said[1]
        assert "20.0%" in said[2]
        # Delivered through the Slack Web API, each once, in order: the third is the marker that the
        # hovering between them was judged and posted nothing.
        wait_until(lambda: len(fake.messages("C0RANKER")) >= 3, timeout=30, what="three announcements")
        posted = [m["text"] for m in fake.messages("C0RANKER")]
        assert len(posted) == 3 and [p[:20] for p in posted] == [t[:20] for t in said], posted
        # A budget nobody knows (a source down) changes nothing.
        at = start + timedelta(minutes=len(story))
        with Session(services.engine) as session:
            session.add(
                SloStatus(
                    slo_id="ranker-availability", evaluated_at=at, state="source_error", budget_remaining=None
                )
            )
            session.commit()
        assert jobs.watch_freezes(services, now=at) == 0
        with Session(services.engine) as session:
            assert gates.frozen_now(session, "ranker", "prod") is True
    finally:
        services.close()
        fake.__exit__(None, None, None)
