"""Property: every schema-valid Alertmanager v4 notification is stored and readable, whatever it holds.

Generated notifications (arbitrary Unicode with lone surrogates, label values up to the body limit,
fingerprints of any length, Alertmanager's zero time and datetimes at the edges of the representable range
with offsets) are posted to a real `sloguard serve` process on SQLite and on PostgreSQL. Each must answer
2xx, and the incident it names must read back through the API with every alert's labels whole. The seed
is fixed (`derandomize`), so a failure is reproducible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import API_TOKEN, REPO, WEBHOOK_TOKEN, pg_schema_url
from tests.servers import free_port, stop_process, wait_until

pytestmark = pytest.mark.integration
BODY_LIMIT = 1024 * 1024  # webhook_max_bytes' default
EXAMPLES = 40  # per backend: about 20 s each on this machine
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
API = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def sloguard_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A `sloguard serve` process on an empty database of each backend."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'sloguard.db'}"])
    else:
        urls = pg_schema_url(request.getfixturevalue("pg_database"))
    database_url = next(urls)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")} | {
        "SLOGUARD_DATABASE_URL": database_url,
        "SLOGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "SLOGUARD_API_TOKEN": API_TOKEN,
        "SLOGUARD_SLO_DIR": str(tmp_path / "no-slos"),
        "SLOGUARD_CONFIG_FILE": str(tmp_path / "sloguard.yaml"),
        "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",
        "SLOGUARD_SCHEDULER_ENABLED": "false",
        "SLOGUARD_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),  # this checkout's code, whichever one the installed script points at
    }
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _healthy(url), timeout=60, what="sloguard serve")
            yield url
        finally:
            stop_process(process, None)
            next(urls, None)  # drops the PostgreSQL schema
    served = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in served, served[-3000:]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------- strategies

SURROGATES = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
# Any code point but NUL (refused at the door, documented) and, separately, lone surrogates.
CHARACTERS = st.one_of(st.characters(exclude_characters="\x00"), SURROGATES)
TEXT = st.text(CHARACTERS, max_size=40)
NAMES = st.text(CHARACTERS, min_size=1, max_size=30)


@st.composite
def long_text(draw: st.DrawFn) -> str:
    """Usually short; sometimes a value far past every column, up to a good part of the body limit."""
    head = draw(TEXT)
    if draw(st.integers(0, 9)) == 0:
        return head + draw(st.sampled_from("xé字🚨")) * draw(st.integers(200, 120_000))
    return head


@st.composite
def timestamp(draw: st.DrawFn) -> str:
    """RFC 3339 as Go writes it: Alertmanager's zero time, or any instant from year 1 to 9999 with an
    offset (its UTC time may fall outside the range) and up to nine fractional digits."""
    if draw(st.integers(0, 5)) == 0:
        return "0001-01-01T00:00:00Z"
    edge = draw(st.sampled_from(["any", "low", "high"]))
    low, high = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)
    if edge == "low":
        high = low + timedelta(days=1)
    elif edge == "high":
        low = high - timedelta(days=1)
    moment = draw(st.datetimes(min_value=low, max_value=high))
    minutes = draw(st.integers(-14 * 60, 14 * 60))
    zone = (
        "Z"
        if minutes == 0
        else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    )
    fraction = draw(st.sampled_from(["", ".5", f".{moment.microsecond:06d}", ".123456789"]))
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}{zone}"


@st.composite
def labels(draw: st.DrawFn) -> dict[str, str]:
    found = draw(st.dictionaries(NAMES, long_text(), min_size=1, max_size=5))
    for key in ("alertname", "service", "model", "severity"):
        if draw(st.booleans()):
            found[key] = draw(long_text())
    return found


@st.composite
def notification(draw: st.DrawFn) -> dict[str, Any]:
    run = uuid.uuid4().hex  # each example its own alerts: a repeat of an earlier one is not "new"
    alerts = []
    for index in range(draw(st.integers(1, 4))):
        alerts.append(
            {
                # The first alert fires, so every notification is one sloguard must open or attach.
                "status": "firing" if index == 0 else draw(st.sampled_from(["firing", "resolved"])),
                "labels": draw(labels()),
                "annotations": draw(st.dictionaries(NAMES, long_text(), max_size=3)),
                "startsAt": draw(timestamp()),
                "endsAt": draw(timestamp()),
                "generatorURL": draw(TEXT),
                "fingerprint": draw(NAMES) + f"-{run}-{index}" * draw(st.integers(1, 3)),
            }
        )
    common = draw(labels())
    return {
        "version": "4",
        "groupKey": draw(long_text()) + run,
        "truncatedAlerts": draw(st.integers(0, 2**31)),
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "receiver": draw(TEXT),
        "groupLabels": draw(st.dictionaries(NAMES, long_text(), max_size=3)),
        "commonLabels": common,
        "commonAnnotations": draw(
            st.dictionaries(st.sampled_from(["summary", "description", "x"]), long_text())
        ),
        "externalURL": draw(TEXT),
        "alerts": alerts,
    }


def repaired(value: Any) -> Any:
    """What sloguard stores for a value: lone surrogates as U+FFFD (as Go's encoder writes them)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {repaired(k): repaired(v) for k, v in value.items()}
    return value


def test_every_schema_valid_notification_is_stored_and_reads_back_whole(sloguard_url: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(payload=notification())
    def post_and_read(payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()  # ensure_ascii: surrogates travel as \\udxxx escapes
        if len(body) > BODY_LIMIT:
            return  # past the limit is a documented 413 (tests/security/test_limits.py)
        answer = httpx.post(f"{sloguard_url}/webhooks/alertmanager", content=body, headers=HOOK, timeout=60)
        assert answer.status_code == 200, f"{answer.status_code}: {answer.text[:500]}"
        incident_id = answer.json()["incident_id"]
        assert incident_id is not None, answer.text
        detail = httpx.get(f"{sloguard_url}/api/v1/incidents/{incident_id}", headers=API, timeout=60)
        assert detail.status_code == 200, f"{detail.status_code}: {detail.text[:500]}"
        stored = [(alert["labels"], alert["annotations"]) for alert in detail.json()["alerts"]]
        for alert in payload["alerts"]:
            whole = (repaired(alert["labels"]), repaired(alert["annotations"]))
            assert whole in stored, "an alert's labels or annotations did not read back whole"
        listed = httpx.get(f"{sloguard_url}/api/v1/incidents?limit=500", headers=API, timeout=60)
        assert listed.status_code == 200, f"{listed.status_code}: {listed.text[:500]}"

    post_and_read()
