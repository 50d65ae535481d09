"""Alertmanager silences for planned windows: each occurrence is silenced before it starts (through
Alertmanager's v2 API, as an outbox effect), and the silence is expired if the window is cancelled or
dropped from sloguard.yaml before it is over.

The watch runs with each evaluation cycle (on the scheduler leader). An occurrence starting within
LEAD seconds, or already on, gets a `planned_silence` row and a `alertmanager.silence` effect in one unit
of work; the handler creates the silence (matching the covered SLOs' `sloth_id`, from the occurrence's
start to its end) and records its ID. A delivery that may have reached Alertmanager before (a crash after
the POST) first looks for a silence carrying the occurrence's key in its comment, so a retry never
silences twice. Expiring is an `alertmanager.expire` effect in the same group, after the creation.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlmodel import Session, col, select

from app import db, outbox
from app.planned import windows as planned
from app.planned.models import CANCELLING, CREATED, EXPIRED, WANTED, PlannedSilence
from app.services import Services

log = logging.getLogger(__name__)

SILENCE, EXPIRE = "alertmanager.silence", "alertmanager.expire"
LEAD = 3600.0  # an occurrence is silenced this long before it starts
CREATED_BY = "sloguard"


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def key_of(occurrence: planned.Occurrence, slo_ids: list[str]) -> str:
    """What one silence holds: the window's name, the occurrence's start and end, and (as a digest) the
    SLOs it covers. A window edited in sloguard.yaml (its duration, its scope) is another silence: the
    old one is expired and the new one made."""
    scope = hashlib.sha256("\n".join(sorted(slo_ids)).encode()).hexdigest()[:8]
    return f"{occurrence.name}@{_z(occurrence.start)}/{_z(occurrence.end)}/{scope}"


def comment_of(key: str, reason: str) -> str:
    return f"planned window {key}" + (f": {reason}" if reason else "")


def carries(comment: str, key: str) -> bool:
    """The silence's comment is this occurrence's, exactly (not another window's with a longer name)."""
    head = f"planned window {key}"
    return comment == head or comment.startswith(head + ":")


def matcher(slo_ids: list[str]) -> dict[str, Any]:
    """Alertmanager's matcher for the generated alerts of these SLOs (their `sloth_id` label)."""
    return {
        "name": "sloth_id",
        "value": "|".join(re.escape(slo_id) for slo_id in sorted(slo_ids)),
        "isRegex": True,
        "isEqual": True,
    }


def watch(services: Services, now: datetime | None = None) -> int:
    """Ask for the silences of occurrences starting within LEAD (or on), and expire those no longer
    planned; returns how many effects were recorded. Does nothing without SLOGUARD_ALERTMANAGER_URL."""
    if services.settings.alertmanager_url is None:
        return 0
    now = now or datetime.now(UTC)
    slos = services.slo_engine.slos
    wanted: dict[str, tuple[planned.Occurrence, list[str]]] = {}
    for window in services.config.planned_windows:
        covered = sorted(slo.id for slo in slos if window.covers(slo.id, slo.service, slo.model))
        if not covered:
            continue
        for occurrence in window.occurrences(now, now + timedelta(seconds=LEAD)):
            wanted[key_of(occurrence, covered)] = (occurrence, covered)

    def unit(session: Session, _events: db.Events) -> int:
        recorded = 0
        live = session.exec(
            select(PlannedSilence).where(
                col(PlannedSilence.state).in_((WANTED, CREATED)), col(PlannedSilence.ends_at) > now
            )
        ).all()
        known = {
            row.key: row
            for row in session.exec(select(PlannedSilence).where(col(PlannedSilence.key).in_(list(wanted))))
        }
        for key, (occurrence, covered) in wanted.items():
            row = known.get(key)
            if row is not None and row.state in (WANTED, CREATED):
                continue
            if row is None:
                row = PlannedSilence(
                    key=key,
                    window=occurrence.name,
                    starts_at=occurrence.start,
                    ends_at=occurrence.end,
                    slo_ids=covered,
                    created_at=now,
                )
            # Planned again after it was expired (a window un-cancelled): silenced again, after the expiry.
            row.state, row.silence_id = WANTED, None
            session.add(row)
            payload = {
                "key": key,
                "starts_at": occurrence.start.isoformat(),
                "ends_at": occurrence.end.isoformat(),
                "slo_ids": covered,
                "reason": occurrence.reason,
            }
            outbox.enqueue(session, SILENCE, f"alertmanager:{key}", payload)
            recorded += 1
        for row in live:
            if row.key in wanted:
                continue
            if _still_planned(services, row):
                continue
            row.state = CANCELLING
            session.add(row)
            outbox.enqueue(session, EXPIRE, f"alertmanager:{row.key}", {"key": row.key})
            recorded += 1
        return recorded

    recorded = db.unit_of_work(services.engine, None, unit)
    if recorded:
        log.info("planned window silences", extra={"effects": recorded})
    return recorded


def _still_planned(services: Services, row: PlannedSilence) -> bool:
    """The occurrence is still in sloguard.yaml as it was silenced (its window there, not cancelled, with
    the same times and SLOs)."""
    slos = services.slo_engine.slos
    for window in services.config.planned_windows:
        if window.name == row.window:
            covered = sorted(slo.id for slo in slos if window.covers(slo.id, slo.service, slo.model))
            return any(key_of(o, covered) == row.key for o in window.occurrences(row.starts_at, row.ends_at))
    return False


class Silencer:
    """The outbox handlers that talk to Alertmanager's v2 API."""

    def __init__(self, engine: Any, url: str, timeout: float = 10.0) -> None:
        self.engine, self.url, self.timeout = engine, url.rstrip("/"), timeout

    def handlers(self) -> dict[str, outbox.Handler]:
        return {SILENCE: self.silence, EXPIRE: self.expire}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        except httpx.ConnectError as error:
            raise outbox.DeliveryFailed(f"alertmanager: {error}", sent=False) from error
        except httpx.HTTPError as error:
            raise outbox.DeliveryFailed(f"alertmanager: {error}") from error
        if response.status_code >= 500:
            raise outbox.DeliveryFailed(f"alertmanager answered {response.status_code}", sent=False)
        return response

    def _existing(self, key: str) -> str | None:
        """The ID of a live silence an earlier attempt created for this occurrence, if any. Alertmanager not
        answering is a failed delivery (tried again), never "none": a second silence is not made."""
        response = self._call("GET", "/api/v2/silences")
        if response.status_code != 200:
            raise outbox.DeliveryFailed(
                f"alertmanager listed no silences: {response.status_code}", sent=False
            )
        for silence in response.json():
            state = (silence.get("status") or {}).get("state")
            mine = silence.get("createdBy") == CREATED_BY and carries(str(silence.get("comment", "")), key)
            if mine and state in ("active", "pending"):
                return str(silence["id"])
        return None

    def silence(self, effect: outbox.Effect) -> outbox.Completion | None:
        payload = effect.payload
        key = str(payload["key"])
        if datetime.fromisoformat(payload["ends_at"]) <= datetime.now(UTC):
            # Delivered after the occurrence ended (Alertmanager was down throughout): nothing to hold.
            return self._mark(key, EXPIRED)
        found = self._existing(key) if effect.uncertain or effect.attempts > 1 else None
        if found is None:
            body = {
                "matchers": [matcher(list(payload["slo_ids"]))],
                "startsAt": payload["starts_at"],
                "endsAt": payload["ends_at"],
                "createdBy": CREATED_BY,
                "comment": comment_of(key, str(payload.get("reason") or "")),
            }
            response = self._call("POST", "/api/v2/silences", json=body)
            if response.status_code != 200:
                raise outbox.DeliveryFailed(
                    f"alertmanager refused the silence: {response.status_code} {response.text[:300]}",
                    sent=False,
                )
            found = str(response.json()["silenceID"])
        silence_id = found

        def record(session: Session, _events: db.Events) -> None:
            row = session.exec(select(PlannedSilence).where(PlannedSilence.key == key)).first()
            if row is not None:
                row.silence_id, row.state = silence_id, CREATED
                session.add(row)

        return record

    def expire(self, effect: outbox.Effect) -> outbox.Completion | None:
        key = str(effect.payload["key"])
        with Session(self.engine) as session:
            row = session.exec(select(PlannedSilence).where(PlannedSilence.key == key)).first()
            silence_id = row.silence_id if row is not None else None
        silence_id = silence_id or self._existing(key)
        if silence_id is not None and self._live(silence_id):
            response = self._call("DELETE", f"/api/v2/silence/{silence_id}")
            # An earlier attempt (or a person) may have expired it since: Alertmanager says so with a 500.
            if response.status_code not in (200, 404) and self._live(silence_id):
                raise outbox.DeliveryFailed(
                    f"alertmanager did not expire {silence_id}: {response.status_code}", sent=False
                )
        return self._mark(key, EXPIRED, only_from=CANCELLING)  # not if it was planned again meanwhile

    def _live(self, silence_id: str) -> bool:
        """The silence is still active or pending (not expired, and not gone)."""
        response = self._call("GET", f"/api/v2/silence/{silence_id}")
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise outbox.DeliveryFailed(
                f"alertmanager: silence {silence_id}: {response.status_code}", sent=False
            )
        return (response.json().get("status") or {}).get("state") in ("active", "pending")

    @staticmethod
    def _mark(key: str, state: str, only_from: str | None = None) -> outbox.Completion:
        def record(session: Session, _events: db.Events) -> None:
            row = session.exec(select(PlannedSilence).where(PlannedSilence.key == key)).first()
            if row is not None and (only_from is None or row.state == only_from):
                row.state = state
                session.add(row)

        return record
