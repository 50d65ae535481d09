"""The demo's fraud-detection model server: traffic, errors, latency and feature drift over time.

Every figure is a function of wall-clock time over a list of phases, so the history backfilled into
Prometheus and the live `/metrics` it scrapes afterwards are one continuous story. A rollback (through
the registry alias it watches, or the deploy webhook it serves) starts a new phase on the spot.
"""

from __future__ import annotations

import functools
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.demo.stack import Series
from app.rollback.targets.http_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

MODEL = "fraud-model"
SERVICE = "fraud-model"
RPS = 40.0  # scoring requests a second
BUCKETS = (0.1, 0.25, 0.5, 1.0)
FEATURES = ("amount", "merchant_category", "hour_of_day")
# Latency: fast requests spread under 250 ms, slow ones between 250 ms and 1 s (cumulative shares).
FAST_SHARES = {0.1: 0.6, 0.25: 1.0, 0.5: 1.0, 1.0: 1.0}
SLOW_SHARES = {0.1: 0.0, 0.25: 0.0, 0.5: 0.55, 1.0: 0.95}


def _bucket_share(phase: Phase, le: float) -> float:
    return (1 - phase.slow_ratio) * FAST_SHARES[le] + phase.slow_ratio * SLOW_SHARES[le]


@dataclass(frozen=True)
class Phase:
    start: float  # unix seconds
    version: str
    error_ratio: float  # share of requests answered 5xx
    slow_ratio: float  # share slower than 250 ms
    drift: dict[str, float]  # PSI of each feature against the training data


def story(now: float) -> list[Phase]:
    """Version 3 serves for a day; version 4 rolls out 40 minutes ago and is fine at first; 6 minutes
    ago card amounts shift (a holiday sale) and version 4, which mishandles large amounts, starts
    failing 3 % of requests and slowing down. Version 3 takes the same shift in its stride."""
    calm = {"amount": 0.02, "merchant_category": 0.01, "hour_of_day": 0.01}
    sale = {"amount": 0.31, "merchant_category": 0.04, "hour_of_day": 0.02}
    return [
        Phase(now - 26 * 3600, "3", 0.0005, 0.004, calm),
        Phase(now - 40 * 60, "4", 0.002, 0.008, calm),
        Phase(now - 6 * 60, "4", 0.03, 0.09, sale),
    ]


GOOD_AFTER_SALE = {"3": (0.0005, 0.005)}  # what a rollback brings back: (error ratio, slow ratio)


class FraudModel:
    """Counters are integrals of the phases' rates; the running version changes by appending a phase."""

    def __init__(
        self,
        phases: list[Phase],
        instance: str,
        recovered: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.phases = sorted(phases, key=lambda phase: phase.start)  # later ones may be still to come
        self.instance = instance
        self.recovered = GOOD_AFTER_SALE if recovered is None else recovered
        self.lock = threading.Lock()
        self.versions = sorted({phase.version for phase in phases})

    @property
    def serving(self) -> Phase:
        return self._phase_at(time.time())

    def switch(self, version: str, at: float | None = None) -> bool:
        """Serve `version` from `at` (now), with the error and slow ratios `recovered` gives it (else the
        current ones); a change cancels the phases still to come. False when it already serves."""
        moment = time.time() if at is None else at
        current = self._phase_at(moment)
        with self.lock:
            if current.version == version:
                return False
            errors, slow = self.recovered.get(version, (current.error_ratio, current.slow_ratio))
            self.phases = [phase for phase in self.phases if phase.start <= moment]
            self.phases.append(Phase(moment, version, errors, slow, current.drift))
            if version not in self.versions:
                self.versions = sorted({*self.versions, version})
            return True

    def _served(self, version: str, t: float, share: Callable[[Phase], float]) -> float:
        """Requests of `version` up to `t` times `share` of each phase."""
        with self.lock:
            phases = list(self.phases)
        total = 0.0
        for index, phase in enumerate(phases):
            end = phases[index + 1].start if index + 1 < len(phases) else float("inf")
            if phase.version != version or phase.start >= t:
                continue
            total += (min(t, end) - phase.start) * RPS * share(phase)
        return total

    def _phase_at(self, t: float) -> Phase:
        with self.lock:
            begun = [phase for phase in self.phases if phase.start <= t]
            return begun[-1] if begun else self.phases[0]

    def _labels(self, **extra: str) -> dict[str, str]:
        return {"job": SERVICE, "instance": self.instance, "service": SERVICE} | extra

    def samples(self, t: float) -> list[tuple[str, dict[str, str], float]]:
        """Every sample at time `t`: (name, labels, value)."""
        out: list[tuple[str, dict[str, str], float]] = []
        for version in self.versions:
            errors = self._served(version, t, lambda p: p.error_ratio)
            total = self._served(version, t, lambda _: 1.0)
            labels = self._labels(model_version=version)
            out.append(("http_requests_total", labels | {"code": "200"}, round(total - errors, 3)))
            out.append(("http_requests_total", labels | {"code": "500"}, round(errors, 3)))
            for le in BUCKETS:
                value = self._served(
                    version,
                    t,
                    functools.partial(_bucket_share, le=le),
                )
                out.append(
                    ("http_request_duration_seconds_bucket", labels | {"le": str(le)}, round(value, 3))
                )
            out.append(("http_request_duration_seconds_bucket", labels | {"le": "+Inf"}, round(total, 3)))
            out.append(("http_request_duration_seconds_count", labels, round(total, 3)))
            seconds = self._served(version, t, lambda p: 0.09 * (1 - p.slow_ratio) + 0.6 * p.slow_ratio)
            out.append(("http_request_duration_seconds_sum", labels, round(seconds, 3)))
        phase = self._phase_at(t)
        for feature in FEATURES:
            out.append(
                (
                    "ml_feature_drift_score",
                    {"job": SERVICE, "instance": self.instance, "model": MODEL, "feature": feature},
                    phase.drift[feature],
                )
            )
        return out

    def history(self) -> list[Series]:
        """The story so far as series for `write_openmetrics` (one per sample name and label set)."""
        keys = [(name, labels) for name, labels, _ in self.samples(self.phases[0].start)]
        memo: dict[int, list[tuple[str, dict[str, str], float]]] = {}

        def at(t: int) -> list[tuple[str, dict[str, str], float]]:
            if t not in memo:
                memo[t] = self.samples(t)
            return memo[t]

        def reader(index: int) -> Callable[[int], float]:
            return lambda t: at(t)[index][2]

        return [
            Series(name, labels, reader(i), kind="gauge" if name.startswith("ml_") else None)
            for i, (name, labels) in enumerate(keys)
        ]

    def exposition(self) -> str:
        """Prometheus text format 0.0.4 for a scrape now."""
        lines: list[str] = []
        typed: set[str] = set()
        for name, labels, value in self.samples(time.time()):
            family = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
            if name.startswith("http_request_duration"):
                family, kind = "http_request_duration_seconds", "histogram"
            elif name.startswith("ml_"):
                kind = "gauge"
            else:
                kind = "counter"
            if family not in typed:
                typed.add(family)
                lines.append(f"# TYPE {family} {kind}")
            # Prometheus adds job and instance from the scrape target.
            shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k not in ("job", "instance"))
            lines.append(f"{name}{{{shown}}} {value!r}")
        return "\n".join(lines) + "\n"


class ModelServer:
    """Serves the model's `/metrics` and a signed deploy webhook (`POST /deploy`) on loopback."""

    def __init__(self, model: FraudModel, port: int, webhook_secret: str) -> None:
        self.model, self.port, self.secret = model, port, webhook_secret
        self.deploys: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()

    def start(self) -> ModelServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self._send(404, b"not found\n", "text/plain")
                    return
                self._send(200, owner.model.exposition().encode(), "text/plain; version=0.0.4")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                code, answer = owner.deploy(
                    body, self.headers.get(TIMESTAMP_HEADER, ""), self.headers.get(SIGNATURE_HEADER, "")
                )
                self._send(code, json.dumps(answer).encode(), "application/json")

            def _send(self, code: int, data: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def deploy(self, body: bytes, timestamp: str, signed: str) -> tuple[int, dict[str, Any]]:
        """The deploy system's side of sloguard's HTTP webhook target: check the signature, switch."""
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return 401, {"error": "stale or missing timestamp"}
        if not hmac.compare_digest(signature(self.secret, timestamp, body), signed):
            return 401, {"error": "bad signature"}
        try:
            change = json.loads(body)
            version = str(change["to"])
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "needs a JSON body with `to`"}
        self.deploys.append(change)
        self.model.switch(version)
        return 200, {"serving": version}

    def watch_alias(self, read_alias: Callable[[], str], interval: float = 0.5) -> None:
        """Serve whatever version the registry alias names, as a serving layer that follows it does."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.model.switch(read_alias())
                except Exception:  # the registry may be restarting; try again next tick
                    continue

        threading.Thread(target=loop, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
