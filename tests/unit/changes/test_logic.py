"""MLflow's webhook signature, the timestamp's age and the payload's shape, with vectors computed here
the way MLflow's own delivery code computes them (mlflow/webhooks/delivery.py), not through sloguard's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.changes import logic
from app.changes.logic import AliasMove, Ignored, Refused, RegistryEvent

SECRET = "whsec-test-0123456789"
NOW = datetime(2026, 12, 4, 19, 0, 0, tzinfo=UTC)
DELIVERY = "0b6a1c8e-6f2e-4f7e-9a43-2a3f1e9d7c10"


def mlflow_signature(secret: str, delivery_id: str, timestamp: str, payload: str) -> str:
    signed = f"{delivery_id}.{timestamp}.{payload}"
    digest = hmac.new(secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("utf-8")


def signed(
    payload: str, *, at: datetime = NOW, secret: str = SECRET, delivery: str = DELIVERY
) -> dict[str, str | None]:
    timestamp = str(int(at.timestamp()))
    return {
        "X-MLflow-Signature": mlflow_signature(secret, delivery, timestamp, payload),
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
    }


PAYLOAD = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-12-04T18:59:59.123456+00:00",
        "data": {"name": "fraud-detector", "alias": "champion", "version": "5"},
    }
)


def test_a_fixed_vector() -> None:
    # Printed once with `python3 -c` (hmac, hashlib, base64) from the formula in MLflow's delivery.py.
    body = b'{"entity": "model_version_alias"}'
    vector = "v1,dBrVCoRn/KY6ls4MqwhmI74v1/OOZYt/8Ga7CTKqlzs="
    assert logic.signature(SECRET, DELIVERY, "1796410800", body) == vector
    headers = {
        "X-MLflow-Signature": vector,
        "X-MLflow-Delivery-Id": DELIVERY,
        "X-MLflow-Timestamp": "1796410800",
    }
    assert logic.verify(SECRET, headers, body, NOW) == DELIVERY


def test_a_computed_vector() -> None:
    # Computed once by hand with Python's hmac and base64 from the formula in MLflow's delivery.py.
    expected = mlflow_signature("s", "d", "1", "{}")
    assert logic.signature("s", "d", "1", b"{}") == expected
    assert expected == "v1," + base64.b64encode(hmac.new(b"s", b"d.1.{}", hashlib.sha256).digest()).decode()


def test_mlflows_signature_is_accepted_and_gives_the_delivery_id() -> None:
    assert logic.verify(SECRET, signed(PAYLOAD), PAYLOAD.encode(), NOW) == DELIVERY


def test_one_of_several_signatures_may_match_while_a_secret_is_rotated() -> None:
    headers = signed(PAYLOAD)
    headers["X-MLflow-Signature"] = (
        f"v1,{base64.b64encode(b'x' * 32).decode()} {headers['X-MLflow-Signature']}"
    )
    assert logic.verify(SECRET, headers, PAYLOAD.encode(), NOW) == DELIVERY


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: ({**h, "X-MLflow-Signature": None}, b), "missing X-MLflow-Signature"),
        (lambda h, b: ({**h, "X-MLflow-Delivery-Id": None}, b), "missing X-MLflow-Delivery-Id"),
        (lambda h, b: ({**h, "X-MLflow-Timestamp": ""}, b), "missing X-MLflow-Timestamp"),
        (lambda h, b: (h, b.replace(b'"5"', b'"6"')), "does not match the body"),
        (lambda h, b: ({**h, "X-MLflow-Delivery-Id": "another-delivery"}, b), "does not match the body"),
        (lambda h, b: (signed(PAYLOAD, secret="another secret"), b), "does not match the body"),
        (
            lambda h, b: ({**h, "X-MLflow-Signature": h["X-MLflow-Signature"].replace("v1,", "v0,")}, b),
            "does not match",
        ),
        (lambda h, b: ({**h, "X-MLflow-Timestamp": "soon"}, b), "not a Unix time"),
        # A latin-1 header byte 0xB2 reaches us as '²': a digit to str.isdigit, not to int()
        (lambda h, b: ({**h, "X-MLflow-Timestamp": "\xb2"}, b), "not a Unix time"),
        (lambda h, b: ({**h, "X-MLflow-Timestamp": "١٧٩٦٤٠٠٠٠٠"}, b), "not a Unix time"),
        (lambda h, b: ({**h, "X-MLflow-Delivery-Id": "a b"}, b), "not a delivery id"),
    ],
)
def test_a_forged_or_incomplete_request_is_refused_with_its_reason(change: Any, reason: str) -> None:
    headers, body = change(signed(PAYLOAD), PAYLOAD.encode())
    with pytest.raises(Refused) as refused:
        logic.verify(SECRET, headers, body, NOW)
    assert refused.value.status == 401 and reason in str(refused.value)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(0, True), (299, True), (-299, True), (301, False), (-301, False), (3600, False)],
)
def test_the_timestamp_may_be_at_most_five_minutes_either_way(offset: int, accepted: bool) -> None:
    sent = NOW - timedelta(seconds=offset)  # positive: sent in the past
    headers = signed(PAYLOAD, at=sent)
    if accepted:
        assert logic.verify(SECRET, headers, PAYLOAD.encode(), NOW) == DELIVERY
        return
    with pytest.raises(Refused) as refused:
        logic.verify(SECRET, headers, PAYLOAD.encode(), NOW)
    assert refused.value.status == 401
    assert ("old" if offset > 0 else "in the future") in str(refused.value)


def test_alias_set_alias_deleted_and_version_created_are_read() -> None:
    assert logic.parse(json.loads(PAYLOAD), NOW) == RegistryEvent(
        "alias_set",
        "fraud-detector",
        datetime(2026, 12, 4, 18, 59, 59, 123456, tzinfo=UTC),
        alias="champion",
        version="5",
    )
    deleted = {"entity": "model_version_alias", "action": "deleted", "data": {"name": "m", "alias": "a"}}
    assert logic.parse(deleted, NOW) == RegistryEvent("alias_deleted", "m", NOW, alias="a")
    created = {
        "entity": "model_version",
        "action": "created",
        "timestamp": "2026-12-04T20:59:59+02:00",
        "data": {
            "name": "m",
            "version": "7",
            "source": "s3://m/7",
            "run_id": None,
            "tags": {"k": "v"},
            "description": None,
        },
    }
    assert logic.parse(created, NOW) == RegistryEvent(
        "version_created",
        "m",
        datetime(2026, 12, 4, 18, 59, 59, tzinfo=UTC),
        version="7",
        detail={"source": "s3://m/7", "tags": {"k": "v"}},
    )


def test_other_events_are_ignored_not_refused() -> None:
    tag = {"entity": "model_version_tag", "action": "set", "data": {"name": "m", "version": "1", "key": "k"}}
    assert logic.parse(tag, NOW) == Ignored("model_version_tag", "set")
    assert logic.parse({"entity": "prompt", "action": "created"}, NOW) == Ignored("prompt", "created")


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([], "body"),
        ("text", "body"),
        ({"action": "created", "data": {}}, "entity"),
        ({"entity": "model_version_alias", "action": 3, "data": {}}, "action"),
        ({"entity": "model_version_alias", "action": "created", "data": []}, "data:"),
        (
            {"entity": "model_version_alias", "action": "created", "data": {"alias": "a", "version": "1"}},
            "data.name",
        ),
        (
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": "m", "alias": "", "version": "1"},
            },
            "data.alias",
        ),
        (
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": "m", "alias": "a", "version": True},
            },
            "data.version",
        ),
        (
            {
                "entity": "model_version_alias",
                "action": "created",
                "data": {"name": "m" * 201, "alias": "a", "version": "1"},
            },
            "data.name",
        ),
        (
            {
                "entity": "model_version",
                "action": "created",
                "data": {"name": "m", "version": "1", "tags": {"k": 1}},
            },
            "data.tags",
        ),
        (
            {
                "entity": "model_version",
                "action": "created",
                "data": {"name": "m", "version": "1", "source": {}},
            },
            "data.source",
        ),
        (
            {
                "entity": "model_version",
                "action": "created",
                "timestamp": "yesterday",
                "data": {"name": "m", "version": "1"},
            },
            "timestamp",
        ),
        (
            {
                "entity": "model_version",
                "action": "created",
                "timestamp": 17,
                "data": {"name": "m", "version": "1"},
            },
            "timestamp",
        ),
    ],
)
def test_a_body_that_is_not_mlflows_is_a_422_naming_the_field(document: Any, field: str) -> None:
    with pytest.raises(Refused) as refused:
        logic.parse(document, NOW)
    assert refused.value.status == 422 and str(refused.value).startswith(field), str(refused.value)


def move(change_id: int, minutes_before: float, version: str | None, previous: str | None) -> AliasMove:
    return AliasMove(change_id, "champion", version, previous, NOW - timedelta(minutes=minutes_before))


def test_the_suspect_is_the_last_move_before_the_impact_within_the_lookback() -> None:
    moves = [
        move(1, 600, "2", "1"),  # outside a 6-hour lookback
        move(2, 90, "3", "2"),
        move(3, 40, "4", "3"),  # the last before the impact: the suspect
        move(4, -5, "3", "4"),  # after the impact began: the fix, not a suspect
    ]
    assert logic.suspect_move(moves, NOW, timedelta(hours=6)) == moves[2]
    assert logic.suspect_move(moves, NOW, timedelta(minutes=30)) is None
    assert logic.suspect_move([move(5, 10, None, "4")], NOW, timedelta(hours=6)) is None  # a removal
