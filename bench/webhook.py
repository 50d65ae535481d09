"""How many Alertmanager notifications a second sloguard takes in, on SQLite and PostgreSQL.

    .venv/bin/python bench/webhook.py [--notifications 20000] [--groups 2000] [--concurrency 32]
                                      [--alerts 5] [--backend sqlite,postgresql]

An alert storm: Alertmanager 0.25-style version 4 notifications of 5 alerts each, spread over N groups
(one service each, so one incident each). Like Alertmanager, every notification of a group repeats the
group's alerts: from the second on, each retires the oldest alert (sent once more as resolved) and
brings in a new one, so most alerts arrive several times and the intake must store each exactly once.
32 senders (httpx async) post them on loopback to a real `sloguard serve` process on each backend
(PostgreSQL: a throwaway database on 127.0.0.1:5432, dropped afterwards), and, as the ceiling of the
stack, to a bare FastAPI endpoint under uvicorn that only parses the same JSON. Both servers run as
child processes so that the senders (this process) never share a GIL with the server they measure.
Prints throughput, p50/p99 latency, the ratio to the ceiling, and checks the stored alerts and incidents
against the ones sent (OK or MISMATCH; the exit status is 1 on a mismatch or a failed request).

The delivery worker runs as in production: each new incident's outbox rows (its Slack message, its
evidence gathering and the message's redraw) are delivered during the storm to a Slack Web API stand-in
(`tests/fakes/slack.py`, in a child process of its own), and after the storm the script waits for the
outbox to drain and checks that every incident got exactly one message (`--no-slack` leaves Slack out:
the worker then delivers only the evidence rows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, Request

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers import free_port, stop_process, wait_until

TOKEN = "bench-webhook-token-0123456789abcdef"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
EXTERNAL_URL = "http://alertmanager-0.monitoring:9093"


# ---------------------------------------------------------------- the storm


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint: FNV-1a 64 over the sorted label names and values."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, "\xff", labels[name], "\xff"):
            for byte in part.encode():
                value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # Go prints nanoseconds


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    fingerprint: str


def group_alert(group: int, index: int, base: datetime) -> Alert:
    """The `index`-th alert of a group: one pod of the group's service after another."""
    labels = {
        "alertname": f"HighErrorRate{group % 7}",
        "service": f"svc-{group:05d}",
        "namespace": f"team-{group % 40}",
        "severity": "page" if group % 3 == 0 else "warning",
        "pod": f"svc-{group:05d}-{index:04d}-7d9f8",
        "instance": f"10.{group // 250 % 250}.{group % 250}.{index % 250}:8080",
        "job": "kubernetes-pods",
        "prometheus": "monitoring/k8s",
    }
    annotations = {
        "summary": f"5xx ratio above 2% on svc-{group:05d}",
        "description": f"svc-{group:05d} pod {labels['pod']} answers 3.1% of requests with 5xx over 5m.",
        "runbook_url": f"https://runbooks.example.com/svc-{group:05d}.md",
    }
    starts_at = base + timedelta(seconds=group % 600 + index * 30)
    return Alert(labels, annotations, starts_at, fingerprint(labels))


def notification(group: int, sequence: int, size: int, base: datetime) -> dict[str, Any]:
    """The group's `sequence`-th notification: alert `sequence - 1` resolved, then the firing ones."""
    first = max(0, sequence - 1)
    alerts: list[dict[str, Any]] = []
    for index in range(first, first + size):
        alert = group_alert(group, index, base)
        resolved = sequence > 0 and index == sequence - 1
        alerts.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": rfc3339(alert.starts_at + timedelta(minutes=5))
                if resolved
                else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=sum+by+%28pod%29+%28rate%28"
                "http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29+%3E+0.02&g0.tab=1",
                "fingerprint": alert.fingerprint,
            }
        )
    common = {k: v for k, v in alerts[0]["labels"].items() if all(a["labels"][k] == v for a in alerts)}
    group_labels = {"alertname": common["alertname"], "service": common["service"]}
    annotation_keys = set(alerts[0]["annotations"])
    common_annotations = {
        k: alerts[0]["annotations"][k]
        for k in annotation_keys
        if all(a["annotations"][k] == alerts[0]["annotations"][k] for a in alerts)
    }
    return {
        "receiver": "sloguard",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": common_annotations,
        "externalURL": EXTERNAL_URL,
        "version": "4",
        "groupKey": '{}/{severity=~"page|warning"}:'
        + "{"
        + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
        + "}",
        "truncatedAlerts": 0,
    }


@dataclass
class Storm:
    bodies: list[bytes]
    distinct_alerts: int
    groups: int


def build_storm(notifications: int, groups: int, size: int) -> Storm:
    """Round-robin over the groups, as a busy Alertmanager flushes them: group i's k-th notification
    goes out in round k, so no two notifications of one group are in flight together at default sizes."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    bodies: list[bytes] = []
    distinct: set[tuple[str, str]] = set()
    for number in range(notifications):
        group, sequence = number % groups, number // groups
        payload = notification(group, sequence, size, base)
        distinct.update((a["fingerprint"], a["startsAt"]) for a in payload["alerts"])
        bodies.append(json.dumps(payload, separators=(",", ":")).encode())
    return Storm(bodies, len(distinct), min(groups, notifications))


# ---------------------------------------------------------------- servers


class ChildServer:
    """A server in a child process, stopped and its log closed on exit."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def __enter__(self) -> ChildServer:
        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: see {self.log.name}")
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200

        wait_until(up, timeout=60, interval=0.2, what=f"server on {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.process, self.log)


def clean_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLOGUARD_", "OTEL_")) or key.startswith("SLOGUARD_TEST_")
    }


def sloguard_server(
    folder: Path, database_url: str, slack_url: str | None = None, checkout: Path | None = None
) -> ChildServer:
    port = free_port()
    slack = (
        {
            "SLOGUARD_SLACK_BOT_TOKEN": "xoxb-bench",
            "SLOGUARD_SLACK_SIGNING_SECRET": "bench-signing-secret-0123456789",
            "SLOGUARD_SLACK_API_URL": f"{slack_url}/api/",
            "SLOGUARD_SLACK_CHANNEL": "C0BENCH",
        }
        if slack_url
        else {}
    )
    env = (
        clean_env()
        | slack
        | {
            "SLOGUARD_DATABASE_URL": database_url,
            "SLOGUARD_WEBHOOK_TOKEN": TOKEN,
            "SLOGUARD_API_TOKEN": TOKEN + "-api",
            "SLOGUARD_SLO_DIR": str(folder / "slo"),
            "SLOGUARD_RUNBOOK_DIR": str(folder / "runbooks"),
            "SLOGUARD_POSTMORTEM_DIR": str(folder / "postmortems"),
            "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
            "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",  # no SLOs here; nothing to ask
            # The storm measures the intake alone; the jobs would only add a minute's noise.
            "SLOGUARD_SCHEDULER_ENABLED": "false",
        }
    )
    if checkout is not None:  # another version of sloguard (a baseline), from its own source tree
        env["PYTHONPATH"] = str(checkout)
    command = [str(Path(sys.executable).parent / "sloguard"), "serve", "--port", str(port)]
    return ChildServer(command, env, port, folder / f"sloguard-{port}.log")


def serve_slack(url_file: Path) -> None:
    """The Slack Web API stand-in in a process of its own (so it shares no GIL with the senders)."""
    from tests.fakes.slack import FakeSlack

    with FakeSlack() as slack:
        url_file.write_text(slack.url)
        while True:
            time.sleep(3600)


class SlackChild:
    def __init__(self, folder: Path) -> None:
        self.url_file = folder / f"slack-{uuid.uuid4().hex}.url"
        self.log = (folder / "slack.log").open("wb")
        command = [sys.executable, __file__, "slack", "--url-file", str(self.url_file)]
        self.process = subprocess.Popen(
            command, env=clean_env(), stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO
        )
        wait_until(
            lambda: self.url_file.exists() and self.url_file.read_text(), timeout=30, what="Slack stand-in"
        )
        self.url = self.url_file.read_text()

    def close(self) -> None:
        stop_process(self.process, self.log)


def ceiling_server(folder: Path) -> ChildServer:
    port = free_port()
    command = [sys.executable, __file__, "ceiling", "--port", str(port)]
    return ChildServer(command, clean_env(), port, folder / f"ceiling-{port}.log")


def serve_ceiling(port: int) -> None:
    """The stack's ceiling: FastAPI + uvicorn reading and parsing the same body, and nothing else."""
    import uvicorn

    bare = FastAPI()

    @bare.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @bare.post("/webhooks/alertmanager")
    async def alertmanager(request: Request) -> dict[str, Any]:
        document = json.loads(await request.body())
        return {"alerts": len(document["alerts"]), "outcome": "accepted"}

    uvicorn.run(bare, host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------- senders


@dataclass
class Run:
    seconds: float
    latencies: list[float]
    failures: dict[str, int]
    first_failure: str | None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pick(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def storm(url: str, bodies: list[bytes], concurrency: int) -> Run:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    first_failure: list[str] = []
    queue = iter(bodies)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def sender() -> None:
            for body in queue:
                started = time.perf_counter()
                try:
                    response = await client.post("/webhooks/alertmanager", content=body, headers=headers)
                except httpx.TransportError as exc:  # the server dropped the connection: a failure too
                    outcome, detail = type(exc).__name__, repr(exc)
                else:
                    outcome, detail = str(response.status_code), response.text[:300]
                latencies.append(time.perf_counter() - started)
                if outcome != "200":
                    failures[outcome] = failures.get(outcome, 0) + 1
                    if not first_failure:
                        first_failure.append(f"{outcome}: {detail}")

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Run(seconds, latencies, failures, first_failure[0] if first_failure else None)


def warm_up(url: str, bodies: list[bytes]) -> None:
    """A few requests first: connections, imports and caches, not the storm, pay for the first use."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=30) as client:
        for body in bodies:
            client.post("/webhooks/alertmanager", content=body, headers=headers).raise_for_status()


# ---------------------------------------------------------------- checks


def stored(database_url: str) -> tuple[int, int, int]:
    """Alert links, distinct (fingerprint, startsAt) among them, and incidents."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            links = connection.execute(sa.text("SELECT count(*) FROM alert_link")).scalar_one()
            distinct = connection.execute(
                sa.text("SELECT count(*) FROM (SELECT DISTINCT fingerprint, starts_at FROM alert_link) d")
            ).scalar_one()
            opened = connection.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
    finally:
        engine.dispose()
    return int(links), int(distinct), int(opened)


def report(name: str, run: Run, ceiling: Run | None) -> None:
    ratio = f", {run.rate / ceiling.rate:.0%} of the ceiling" if ceiling is not None else ""
    print(
        f"{name:<22} {run.rate:8.0f} req/s  p50 {run.pick(0.50):6.1f} ms  p99 {run.pick(0.99):7.1f} ms  "
        f"max {max(run.latencies) * 1000:7.1f} ms{ratio}"
    )
    if run.failures:
        print(f"{'':<22} FAILED requests by outcome: {run.failures}; first: {run.first_failure}")


def create_pg_database() -> tuple[str, str]:
    name = f"sloguard_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def outbox_state(database_url: str) -> tuple[int, int, int]:
    """(undelivered outbox rows, incidents with a Slack message, distinct messages)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            waiting = connection.execute(
                sa.text("SELECT count(*) FROM outbox WHERE state != 'done'")
            ).scalar_one()
            posted = connection.execute(
                sa.text("SELECT count(*) FROM incident WHERE slack_ts IS NOT NULL")
            ).scalar_one()
            distinct = connection.execute(
                sa.text("SELECT count(DISTINCT slack_ts) FROM incident")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(waiting), int(posted), int(distinct)


@contextmanager
def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database on `backend` (a PostgreSQL one is dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'sloguard-{uuid.uuid4().hex}.db'}"
        return
    pg_name, database_url = create_pg_database()
    try:
        yield database_url
    finally:
        drop_pg_database(pg_name)


def bench_baseline(
    backend: str, folder: Path, storm_: Storm, concurrency: int, ceiling: Run, checkout: Path
) -> Run:
    """The same storm against the sloguard in `checkout` (e.g. a `git worktree` of an earlier commit)."""
    with fresh_database(backend, folder) as database_url:
        with sloguard_server(folder, database_url, None, checkout) as server:
            warm_up(server.url, storm_.bodies[:concurrency])
            run = asyncio.run(storm(server.url, storm_.bodies, concurrency))
    report(f"baseline ({backend})", run, ceiling)
    return run


def bench_backend(
    backend: str,
    folder: Path,
    storm_: Storm,
    concurrency: int,
    ceiling: Run,
    slack: SlackChild | None,
    baseline: Run | None = None,
) -> bool:
    with fresh_database(backend, folder) as database_url:
        with sloguard_server(folder, database_url, slack.url if slack else None) as server:
            warm = storm_.bodies[:concurrency]
            warm_up(server.url, warm)  # the storm sends these again: duplicates, as Alertmanager would
            run = asyncio.run(storm(server.url, storm_.bodies, concurrency))
            started = time.perf_counter()
            wait_until(
                lambda: outbox_state(database_url)[0] == 0,
                timeout=600,
                interval=0.5,
                what="the outbox drained",
            )
            drained = time.perf_counter() - started
        report(f"sloguard ({backend})", run, ceiling)
        if baseline is not None:
            # Both ran against the same ceiling, so the change of the ratio is the change of the rate.
            change = run.rate / baseline.rate - 1
            print(f"{'':<22} ratio to the ceiling {change:+.1%} against the baseline checkout")
        links, distinct, opened = stored(database_url)
        good = links == distinct == storm_.distinct_alerts and opened == storm_.groups and not run.failures
        verdict = "OK" if good else "MISMATCH"
        print(
            f"{'':<22} stored {links} alert links ({distinct} distinct) for {storm_.distinct_alerts} "
            f"distinct alerts sent, {opened} incidents for {storm_.groups} groups: {verdict}"
        )
        _, posted, messages = outbox_state(database_url)
        if slack is not None:
            delivered = posted == messages == opened
            good = good and delivered
            print(
                f"{'':<22} outbox drained {drained:.1f} s after the storm; {posted} incidents with a Slack "
                f"message ({messages} distinct) for {opened} incidents: {'OK' if delivered else 'MISMATCH'}"
            )
        return good


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--groups", type=int, default=2_000)
    parser.add_argument("--alerts", type=int, default=5, help="alerts in each notification")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backend", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql")
    parser.add_argument(
        "--no-slack", action="store_true", help="no Slack: the worker delivers evidence rows only"
    )
    parser.add_argument(
        "--baseline-checkout",
        type=Path,
        help="also storm the sloguard in this source tree (`git worktree add /tmp/old COMMIT`), no Slack",
    )
    args = parser.parse_args()
    backends = [name.strip() for name in args.backend.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    started = time.perf_counter()
    storm_ = build_storm(args.notifications, args.groups, args.alerts)
    average = sum(map(len, storm_.bodies)) / len(storm_.bodies)
    print(
        f"storm: {args.notifications} notifications x {args.alerts} alerts over {storm_.groups} groups "
        f"({storm_.distinct_alerts} distinct alerts, {average / 1024:.1f} KiB a body), "
        f"{args.concurrency} senders; built in {time.perf_counter() - started:.1f} s "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs)"
    )
    all_good = True
    with tempfile.TemporaryDirectory(prefix="sloguard-bench-") as tmp:
        folder = Path(tmp)
        (folder / "slo").mkdir()
        with ceiling_server(folder) as server:
            warm_up(server.url, storm_.bodies[: args.concurrency])
            ceiling = asyncio.run(storm(server.url, storm_.bodies, args.concurrency))
        report("ceiling (parse only)", ceiling, None)
        slack = None if args.no_slack else SlackChild(folder)
        try:
            for backend in backends:
                baseline = None
                if args.baseline_checkout is not None:
                    baseline = bench_baseline(
                        backend, folder, storm_, args.concurrency, ceiling, args.baseline_checkout
                    )
                good = bench_backend(backend, folder, storm_, args.concurrency, ceiling, slack, baseline)
                all_good = good and all_good
        finally:
            if slack is not None:
                slack.close()
    sys.exit(0 if all_good else 1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ceiling":
        serve_ceiling(int(sys.argv[sys.argv.index("--port") + 1]))
    elif len(sys.argv) > 1 and sys.argv[1] == "slack":
        serve_slack(Path(sys.argv[sys.argv.index("--url-file") + 1]))
    else:
        main()
