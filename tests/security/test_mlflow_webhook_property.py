"""Property: a body MLflow's secret signed, whatever it holds, gets 200 or a 4xx with a reason, never a
5xx; what is recorded reads back whole through the API.

The fuzz tests (test_fuzz.py) cannot sign, so there every MLflow delivery stops at 401; here generated
bodies (the three recorded kinds with values of any JSON type and Unicode text up to and past the column
sizes, other entities, timestamps of any shape) are signed as MLflow signs them and posted to the app on
loopback, on SQLite and on PostgreSQL. The seed is fixed (`derandomize`), so a failure is reproducible.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from tests.conftest import API_TOKEN, bearer, make_settings
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
SECRET = "property-tests-mlflow-webhook-secret"
EXAMPLES = 100

text = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=220)
# A value MLflow would send: printable, not blank (any Unicode, up to past the column sizes).
word = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=210,
)
scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json_value = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=8
)
field = st.one_of(word, word, word, scalar, json_value)  # mostly what MLflow sends, sometimes anything
data = st.fixed_dictionaries(
    {"name": field, "alias": field, "version": field},
    optional={
        "source": field,
        "run_id": field,
        "tags": st.dictionaries(word, word, max_size=3) | json_value,
        "description": field,
    },
)
kinds = st.sampled_from(
    [
        ("model_version_alias", "created"),
        ("model_version_alias", "deleted"),
        ("model_version", "created"),
        ("model_version_tag", "set"),
        ("registered_model", "created"),
    ]
)
iso = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
timestamps = st.one_of(iso, st.none(), iso, iso, text, scalar)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    entity, action = draw(kinds)
    document: dict[str, Any] = {"entity": entity, "action": action, "data": draw(data | json_value)}
    timestamp = draw(timestamps)
    if timestamp is not None:
        document["timestamp"] = timestamp
    # Mostly MLflow's shape (the first choice, which hypothesis favours), sometimes any JSON at all.
    return document if draw(st.sampled_from([True] * 9 + [False])) else draw(json_value)


@pytest.fixture
def url(tmp_path: Path, database_url: str) -> Iterator[str]:
    app = create_app(make_settings(tmp_path, database_url=database_url, mlflow_webhook_secret=SECRET))
    with UvicornThread(app) as server:
        yield server.url


def post_signed(url: str, body: bytes) -> httpx.Response:
    delivery, timestamp = str(uuid.uuid4()), str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"{delivery}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }
    return httpx.post(f"{url}/webhooks/mlflow", content=body, headers=headers, timeout=15)


def test_any_signed_body_is_answered_without_a_server_error(url: str) -> None:
    outcomes: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(document=documents())
    def run(document: Any) -> None:
        body = json.dumps(document).encode()
        response = post_signed(url, body)
        assert response.status_code in (200, 422), (
            f"{response.status_code} {response.text} for {body[:300]!r}"
        )
        answer = response.json()
        outcomes.append("refused" if response.status_code == 422 else answer["outcome"])
        if response.status_code == 422:
            assert isinstance(answer["detail"], str) and answer["detail"]
            return
        if answer["outcome"] == "ignored":
            return
        change = answer["change"]
        assert change["registered_model"] == str(document["data"]["name"]).strip()
        stored = httpx.get(
            f"{url}/api/v1/models/{quote(change['model'], safe='/')}/changes",
            params={"limit": 500},
            headers=bearer(API_TOKEN),
            timeout=15,
        )
        assert stored.status_code == 200, stored.text
        assert change in stored.json()

    run()
    # Not vacuous: generated bodies were recorded, ignored and refused.
    assert {"recorded", "ignored", "refused"} <= set(outcomes), sorted(set(outcomes))
