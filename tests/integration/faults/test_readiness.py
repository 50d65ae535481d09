"""Readiness while a source hangs: a Prometheus that accepts connections and never answers.

The latency figures are measured by bench/readiness.py; these tests hold what makes them small: /readyz
reads the background probe's news and never asks a source itself, and /healthz answers during a storm.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import SourceTimeout, SourceUnavailable
from app.main import create_app
from app.sources.elasticsearch import ElasticsearchSource
from app.sources.mlflow import MlflowRegistry
from app.sources.prometheus import PrometheusSource
from tests.conftest import make_settings
from tests.prometheus import PrometheusServer
from tests.servers import TcpProxy, UvicornThread, wait_until

pytestmark = pytest.mark.integration
CONCURRENT_READYZ = 50


class SilentServer:
    """Accepts TCP connections and holds them open without ever sending a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._listener.settimeout(0.05)  # so that close() is not left waiting in accept()
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._held.append(connection)
            self.accepted += 1

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=2)
        self._listener.close()
        for connection in self._held:
            with contextlib.suppress(OSError):
                connection.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def hanging_prometheus_app(silent: SilentServer, tmp_path: Path) -> Iterator[tuple[str, datetime]]:
    """The app (and when it was started) with a Prometheus that never answers, and the shipped source
    timeout (10 s): the probe must not wait that long, and /readyz not at all."""
    settings = make_settings(tmp_path, prometheus_url=silent.url, source_timeout=10.0)
    started = datetime.now(UTC)
    with UvicornThread(create_app(settings)) as server:
        yield server.url, started


def test_readyz_reports_the_probes_timeout_without_asking_prometheus(
    hanging_prometheus_app: tuple[str, datetime], silent: SilentServer
) -> None:
    url, started = hanging_prometheus_app
    with httpx.Client(base_url=url, timeout=30) as http:
        wait_until(
            lambda: http.get("/readyz").json()["source_checks"]["prometheus"]["state"] != "unknown",
            what="the probe's first round",
        )
        connections = silent.accepted
        answers = [http.get("/readyz") for _ in range(20)]
    assert {response.status_code for response in answers} == {200}  # a hanging source never fails readiness
    body = answers[-1].json()
    assert body["database"] == "ok"
    check = body["source_checks"]["prometheus"]
    assert check["state"] == "timeout", check  # a read timeout, not a connection error
    assert body["sources"]["prometheus"] == f"error: {check['detail']}"
    assert started <= datetime.fromisoformat(check["checked_at"]) <= datetime.now(UTC)
    # /readyz reads the probe's news and never asks the source itself: the only new connections to the
    # silent Prometheus are the probe's own, one a round at most
    assert silent.accepted - connections <= rounds_seen(answers)


def rounds_seen(answers: list[httpx.Response]) -> int:
    return len({answer.json()["source_checks"]["prometheus"]["checked_at"] for answer in answers})


def test_healthz_and_readyz_answer_during_a_readyz_storm(
    hanging_prometheus_app: tuple[str, datetime], silent: SilentServer
) -> None:
    """The latency figures of the same storm are in bench/readiness.py; here, what must hold."""
    url, _ = hanging_prometheus_app
    limits = httpx.Limits(max_connections=CONCURRENT_READYZ + 10)
    stop = threading.Event()
    started = threading.Barrier(CONCURRENT_READYZ + 1)
    connections = silent.accepted
    with httpx.Client(base_url=url, timeout=30, limits=limits) as http:

        def keep_asking() -> list[httpx.Response]:
            answers = []
            started.wait()
            while not stop.is_set() or not answers:
                answers.append(http.get("/readyz"))
            return answers

        with ThreadPoolExecutor(max_workers=CONCURRENT_READYZ) as pool:
            askers = [pool.submit(keep_asking) for _ in range(CONCURRENT_READYZ)]
            started.wait()
            try:
                health = [http.get("/healthz") for _ in range(10)]
            finally:
                stop.set()
            readyz = [answer for asker in askers for answer in asker.result()]
    assert {response.status_code for response in health} == {200}
    assert {response.status_code for response in readyz} == {200}
    assert len(readyz) >= CONCURRENT_READYZ
    # however many /readyz arrive, Prometheus sees the probe's pings only (one a round, and the first)
    assert silent.accepted - connections <= rounds_seen(readyz) + 1


@pytest.mark.parametrize("kind", ["prometheus", "elasticsearch", "mlflow"])
def test_a_source_that_never_answers_times_out_as_a_timeout(silent: SilentServer, kind: str) -> None:
    source = {
        "prometheus": lambda: PrometheusSource(silent.url, timeout=0.5),
        "elasticsearch": lambda: ElasticsearchSource(silent.url, timeout=0.5),
        "mlflow": lambda: MlflowRegistry(silent.url, timeout=0.5),
    }[kind]()
    try:
        with pytest.raises(SourceTimeout, match="timed out after 0.5s"):
            source.ping()
    finally:
        source.close()
    assert silent.accepted >= 1  # it connected: the timeout was a read timeout


def test_a_probe_ping_uses_the_short_timeout_not_the_source_timeout(silent: SilentServer) -> None:
    sources = [
        PrometheusSource(silent.url, timeout=30),
        ElasticsearchSource(silent.url, timeout=30),
        MlflowRegistry(silent.url, timeout=30),
    ]
    try:
        for source in sources:
            with pytest.raises(SourceTimeout, match="timed out after 0.3s"):
                source.ping(timeout=0.3)
    finally:
        for source in sources:
            source.close()


def test_the_probe_follows_each_source_on_its_own(silent: SilentServer, tmp_path: Path) -> None:
    from app.health import SourceProbe  # here, so that the other tests of this file run on older code

    prometheus = PrometheusServer(tmp_path / "data").start()
    proxy = TcpProxy("127.0.0.1", prometheus.port)
    answering = PrometheusSource(f"http://127.0.0.1:{proxy.port}", timeout=30)
    hanging = PrometheusSource(silent.url, timeout=30)
    probe = SourceProbe({"answering": answering, "hanging": hanging}, interval=0.1, timeout=0.5)
    try:
        assert probe.results() == {"answering": None, "hanging": None}
        probe.start()
        assert probe.wait_first_round(5)
        first = probe.results()
        assert first["answering"] is not None and first["answering"].state == "ok"
        assert first["hanging"] is not None and first["hanging"].state == "timeout"

        proxy.cut()  # refused: unavailable, not a timeout
        wait_until(lambda: state(probe, "answering") == "unavailable", what="the cut seen by the probe")
        proxy.restore()
        wait_until(lambda: state(probe, "answering") == "ok", what="the recovery seen by the probe")
        later = probe.results()
        assert later["hanging"] is not None and first["hanging"] is not None
        assert later["hanging"].state == "timeout"
        assert later["hanging"].checked_at > first["hanging"].checked_at  # still being checked
    finally:
        probe.stop()
        for source in (answering, hanging):
            source.close()
        proxy.close()
        prometheus.stop()


def state(probe: Any, name: str) -> str | None:
    check = probe.results()[name]
    return check.state if check else None


def test_a_refused_connection_is_unavailable_not_a_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        source = PrometheusSource(f"http://127.0.0.1:{port}", timeout=5)
        with pytest.raises(SourceUnavailable):
            source.ping()
        source.close()
