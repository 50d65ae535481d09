"""Planned windows silence their SLOs' alerts in a real Alertmanager (Debian's package) before they
start, once however often the watch runs, and the silence is expired when the window is cancelled. A
restart between the watch and the delivery loses nothing: the silence is an outbox row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from app.config import load_file_config
from app.demo.stack import AlertmanagerServer
from app.planned import silences
from app.planned.models import PlannedSilence
from app.services import build_services
from app.slo.spec import load_specs
from tests.conftest import make_settings
from tests.servers import wait_until

pytestmark = pytest.mark.integration

SPEC = """version: "prometheus/v1"
service: "{service}"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(errors_total{{service="{service}"}}[{{{{.window}}}}]))
        total_query: sum(rate(requests_total{{service="{service}"}}[{{{{.window}}}}]))
"""


def config(start: datetime, cancelled: bool = False) -> str:
    return f"""planned_windows:
  - name: db-migration
    reason: moving the feature store to the new cluster
    start: "{start.isoformat()}"
    duration: 30m
    services: [checkout]
    cancelled: {str(cancelled).lower()}
  - name: hotfix
    start: "{(start - timedelta(minutes=25)).isoformat()}"
    duration: 30m
    services: [search]
  - name: far-away
    start: "{(start + timedelta(days=3)).isoformat()}"
    duration: 30m
    services: [search]
"""


def silences_of(alertmanager: AlertmanagerServer) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{alertmanager.url}/api/v2/silences", timeout=10).json()
    return [s for s in found if s["createdBy"] == "sloguard"]


def test_a_planned_window_is_silenced_before_it_starts_and_unsilenced_when_cancelled(
    tmp_path: Path, database_url: str
) -> None:
    alertmanager = AlertmanagerServer(tmp_path, "http://127.0.0.1:9/nowhere", "unused").start()
    (tmp_path / "slo").mkdir()
    for service in ("checkout", "search"):
        (tmp_path / "slo" / f"{service}.yaml").write_text(SPEC.format(service=service), encoding="utf-8")
    now = datetime.now(UTC).replace(microsecond=0)
    start = now + timedelta(minutes=20)  # within the hour before: silenced now
    (tmp_path / "sloguard.yaml").write_text(config(start), encoding="utf-8")
    settings = make_settings(tmp_path, database_url=database_url, alertmanager_url=alertmanager.url)
    specs = load_specs([settings.slo_dir])
    try:
        # The watch records the effect; this process stops before delivering it (no worker yet).
        first = build_services(settings, load_file_config(settings.config_file), specs)
        assert silences.watch(first, now) == 2  # db-migration (in 20 minutes) and hotfix (on): not far-away
        assert silences.watch(first, now + timedelta(minutes=1)) == 0  # once per occurrence
        first.close()
        # A restart delivers them.
        services = build_services(settings, load_file_config(settings.config_file), specs)
        services.start_worker("test")
        wait_until(lambda: len(silences_of(alertmanager)) == 2, timeout=30, what="the silences")
        by_window = {
            s["comment"].split("@")[0].removeprefix("planned window "): s for s in silences_of(alertmanager)
        }
        silence = by_window["db-migration"]
        assert silence["matchers"] == [
            {"name": "sloth_id", "value": "checkout\\-availability", "isRegex": True, "isEqual": True}
        ]
        assert datetime.fromisoformat(silence["startsAt"]) == start
        assert datetime.fromisoformat(silence["endsAt"]) == start + timedelta(minutes=30)
        assert silence["status"]["state"] == "pending"
        assert "feature store" in silence["comment"]
        assert by_window["hotfix"]["status"]["state"] == "active"
        # Alertmanager's own matching: search's alert is silenced now, checkout's not yet.
        alertmanager.post({"alertname": "SearchAvailability", "sloth_id": "search-availability"})
        alertmanager.post({"alertname": "CheckoutAvailability", "sloth_id": "checkout-availability"})
        held = httpx.get(f"{alertmanager.url}/api/v2/alerts", timeout=10).json()
        states = {a["labels"]["sloth_id"]: (a["status"]["state"], a["status"]["silencedBy"]) for a in held}
        assert states == {
            "search-availability": ("suppressed", [by_window["hotfix"]["id"]]),
            "checkout-availability": ("active", []),
        }
        with Session(services.engine) as session:
            keys = session.exec(select(PlannedSilence.key)).all()
        wait_until(lambda: all(_recorded(services, key) for key in keys), timeout=30, what="the ids stored")
        services.close()

        # Cancelled before it starts: the silence is expired, through the outbox too.
        (tmp_path / "sloguard.yaml").write_text(config(start, cancelled=True), encoding="utf-8")
        services = build_services(settings, load_file_config(settings.config_file), specs)
        services.start_worker("test")
        assert silences.watch(services, now + timedelta(minutes=2)) == 1
        wait_until(
            lambda: sorted(s["status"]["state"] for s in silences_of(alertmanager)) == ["active", "expired"],
            timeout=30,
            what="the silence expired",
        )

        def states() -> dict[str, str]:
            with Session(services.engine) as session:
                return dict(session.exec(select(PlannedSilence.window, PlannedSilence.state)).all())

        wait_until(lambda: states()["db-migration"] == "expired", timeout=30, what="the expiry recorded")
        assert states() == {"db-migration": "expired", "hotfix": "created"}
        assert silences.watch(services, now + timedelta(minutes=3)) == 0
        services.close()
    finally:
        alertmanager.stop()


def _recorded(services: Any, key: str) -> bool:
    with Session(services.engine) as session:
        row = session.exec(select(PlannedSilence).where(PlannedSilence.key == key)).one()
        return row.silence_id is not None and row.state == "created"


def test_the_gauge_and_the_cli_say_which_windows_are_on(tmp_path: Path, database_url: str) -> None:
    """`/metrics` of a running sloguard and `sloguard planned`, from the same sloguard.yaml."""
    import os
    import subprocess
    import sys

    from app.main import create_app
    from tests.servers import UvicornThread

    (tmp_path / "slo").mkdir()
    for service in ("checkout", "search"):
        (tmp_path / "slo" / f"{service}.yaml").write_text(SPEC.format(service=service), encoding="utf-8")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    (tmp_path / "sloguard.yaml").write_text(config(start), encoding="utf-8")
    settings = make_settings(tmp_path, database_url=database_url)
    with UvicornThread(create_app(settings)) as server:
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
    lines = sorted(line for line in text.splitlines() if line.startswith("sloguard_planned_window_active{"))
    # hotfix is on for search; db-migration (checkout) starts in 20 minutes.
    assert lines == [
        'sloguard_planned_window_active{slo="checkout-availability"} 0.0',
        'sloguard_planned_window_active{slo="search-availability"} 1.0',
    ]

    sloguard = str(Path(sys.executable).parent / "sloguard")
    env = {
        **os.environ,
        "SLOGUARD_CONFIG_FILE": str(settings.config_file),
        "SLOGUARD_SLO_DIR": str(settings.slo_dir),
        "SLOGUARD_DATABASE_URL": database_url,
    }
    shown = subprocess.run(
        [sloguard, "planned", "--days", "4"], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    rows = shown.stdout.splitlines()
    assert [row.split()[0] for row in rows] == ["ON", "next", "next"]
    assert rows[0].endswith("hotfix: search-availability") and "far-away: search-availability" in rows[2]
    assert rows[1].startswith(f"next {start.isoformat().replace('+00:00', 'Z')} .. ")
    as_json = subprocess.run(
        [sloguard, "planned", "--days", "1", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert [json.loads(line)["window"] for line in as_json.stdout.splitlines()] == ["hotfix", "db-migration"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "planned_windows:\n  - {name: x, start: '2026-12-06T02:00:00', duration: 1h, services: [a]}\n"
    )
    refused = subprocess.run(
        [sloguard, "planned"],
        env=env | {"SLOGUARD_CONFIG_FILE": str(bad)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "planned_windows" in refused.stderr and "UTC offset" in refused.stderr


def test_a_crashed_delivery_an_edited_window_and_an_expiry_done_by_hand(
    tmp_path: Path, database_url: str
) -> None:
    """The outcomes the outbox cannot know: a silence the crashed attempt made is found, not made twice
    (and another window whose name ends like this one's is not taken for it); a window edited in
    sloguard.yaml is silenced anew and its old silence expired; a silence someone expired by hand before
    sloguard did is simply done; a window un-cancelled is silenced again."""
    from app.outbox import OutboxRow

    alertmanager = AlertmanagerServer(tmp_path, "http://127.0.0.1:9/nowhere", "unused").start()
    (tmp_path / "slo").mkdir()
    for service in ("checkout", "search"):
        (tmp_path / "slo" / f"{service}.yaml").write_text(SPEC.format(service=service), encoding="utf-8")
    now = datetime.now(UTC).replace(microsecond=0)
    start = now + timedelta(minutes=20)

    def plan(duration: str = "30m", cancelled: bool = False) -> None:
        text = f"""planned_windows:
  - {{name: maint, start: "{start.isoformat()}", duration: {duration}, services: [checkout],
     cancelled: {str(cancelled).lower()}}}
  - {{name: db-maint, start: "{start.isoformat()}", duration: 30m, services: [search]}}
"""
        (tmp_path / "sloguard.yaml").write_text(text, encoding="utf-8")

    settings = make_settings(tmp_path, database_url=database_url, alertmanager_url=alertmanager.url)
    specs = load_specs([settings.slo_dir])

    def started() -> Any:
        services = build_services(settings, load_file_config(settings.config_file), specs)
        services.start_worker("test")
        return services

    def mine() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for s in silences_of(alertmanager):
            found.setdefault(s["comment"].removeprefix("planned window ").split("@")[0], []).append(
                s["status"]["state"]
            )
        return {name: sorted(states) for name, states in found.items()}

    def settled(services: Any) -> bool:
        with Session(services.engine) as session:
            return not session.exec(select(OutboxRow).where(OutboxRow.state == "pending")).all()

    try:
        plan()
        first = build_services(settings, load_file_config(settings.config_file), specs)
        assert silences.watch(first, now) == 2
        with Session(first.engine) as session:
            keys = {r.window: r.key for r in session.exec(select(PlannedSilence))}
            # The crash: maint's attempt reached Alertmanager, then the process died before recording it.
            (effect,) = [r for r in session.exec(select(OutboxRow)) if r.payload.get("key") == keys["maint"]]
            effect.uncertain, effect.attempts = True, 1
            session.add(effect)
            session.commit()
        made = httpx.post(
            f"{alertmanager.url}/api/v2/silences",
            json={
                "matchers": [silences.matcher(["checkout-availability"])],
                "startsAt": start.isoformat(),
                "endsAt": (start + timedelta(minutes=30)).isoformat(),
                "createdBy": "sloguard",
                "comment": silences.comment_of(keys["maint"], ""),
            },
            timeout=10,
        ).json()["silenceID"]
        first.close()
        services = started()
        wait_until(lambda: settled(services), timeout=30, what="the silences delivered")
        assert mine() == {"maint": ["pending"], "db-maint": ["pending"]}  # one each: the crashed one found
        with Session(services.engine) as session:
            assert (
                session.exec(select(PlannedSilence.silence_id).where(PlannedSilence.window == "maint")).one()
                == made
            )
        services.close()

        # Edited: maint now lasts an hour. Its old silence is expired, a new one made; db-maint untouched.
        plan(duration="1h")
        services = started()
        assert silences.watch(services, now + timedelta(minutes=1)) == 2
        wait_until(lambda: settled(services), timeout=30, what="the edit delivered")
        assert mine() == {"maint": ["expired", "pending"], "db-maint": ["pending"]}
        (longer,) = [
            s
            for s in silences_of(alertmanager)
            if s["status"]["state"] == "pending" and s["comment"].startswith("planned window maint@")
        ]
        assert datetime.fromisoformat(longer["endsAt"]) == start + timedelta(hours=1)

        # Cancelled, but someone expired the silence by hand first: sloguard's expiry is simply done.
        httpx.delete(f"{alertmanager.url}/api/v2/silence/{longer['id']}", timeout=10).raise_for_status()
        plan(duration="1h", cancelled=True)
        services.close()
        services = started()
        assert silences.watch(services, now + timedelta(minutes=2)) == 1
        wait_until(lambda: settled(services), timeout=30, what="the expiry delivered")
        with Session(services.engine) as session:
            states = {
                r.key: r.state
                for r in session.exec(select(PlannedSilence).where(PlannedSilence.window == "maint"))
            }
        assert sorted(states.values()) == ["expired", "expired"]

        # Un-cancelled: silenced again.
        plan(duration="1h")
        services.close()
        services = started()
        assert silences.watch(services, now + timedelta(minutes=3)) == 1
        wait_until(lambda: settled(services), timeout=30, what="silenced again")
        assert mine() == {"maint": ["expired", "expired", "pending"], "db-maint": ["pending"]}
        services.close()
    finally:
        alertmanager.stop()
