"""Real Prometheus, promtool, Alertmanager and MLflow processes on loopback.

The demo runs the whole stack with these; the tests start the same servers through them. History is
written as OpenMetrics and turned into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

DEBIAN_PACKAGES = ("prometheus", "prometheus-alertmanager")
INSTALL_HINT = "sudo apt-get install -y prometheus prometheus-alertmanager  (or run `make test` once)"


class MissingBinary(RuntimeError):
    """A server binary is not installed; the message says how to install it."""


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingBinary(f"{name} not found; install Debian's packages with: {INSTALL_HINT}")
    return path


def free_port() -> int:
    """A loopback port that no other process is handed for about a minute.

    Binding port 0 and closing leaves the port free for anyone: a parallel test worker or another
    process of the demo may be given the same one before our server binds it. Connecting once and
    closing the accepted side first leaves the port in TIME_WAIT, which the kernel skips when anyone
    binds port 0, while a server that binds it with SO_REUSEADDR (uvicorn, Go's net/http, PostgreSQL,
    http.server) still can.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port: int = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            accepted, _ = listener.accept()
            accepted.close()
    return port


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # the server may not listen yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout}s (last error: {last_error!r})")


def stop_process(process: subprocess.Popen[bytes] | None, log: IO[bytes] | None) -> None:
    """Terminate a server started with Popen (kill it if it lingers) and close its log."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if log is not None:
        log.close()


# ---------------------------------------------------------------- history


@dataclass(frozen=True)
class Series:
    """A counter, gauge or histogram part sampled every `step` seconds from `start` to `end` inclusive."""

    name: str  # full sample name, e.g. http_requests_total
    labels: dict[str, str]
    value_at: Callable[[int], float | None]  # None: no sample at that time
    kind: str | None = None  # "counter" (default), "gauge" or "histogram" (from a _bucket member)


def write_openmetrics(path: Path, series: Iterable[Series], start: int, end: int, step: int) -> None:
    """OpenMetrics text with one `# TYPE` per metric family, samples in time order per series."""
    by_family: dict[str, list[Series]] = {}
    for item in series:
        family = item.name.removesuffix("_total")
        for suffix in ("_bucket", "_count", "_sum"):
            if item.name.endswith(suffix) and not item.name.endswith("_total"):
                family = item.name.removesuffix(suffix)
        by_family.setdefault(family, []).append(item)
    with path.open("w") as out:
        for family, members in by_family.items():
            kind = next((m.kind for m in members if m.kind), None) or (
                "histogram" if any(m.name.endswith("_bucket") for m in members) else "counter"
            )
            out.write(f"# TYPE {family} {kind}\n")
            for member in members:
                labels = ",".join(f'{key}="{value}"' for key, value in sorted(member.labels.items()))
                for t in range(start, end + 1, step):
                    value = member.value_at(t)
                    if value is not None:
                        out.write(f"{member.name}{{{labels}}} {value!r} {t}\n")
        out.write("# EOF\n")


def backfill(openmetrics: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(openmetrics),
            str(data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def promtool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- servers


class PrometheusServer:
    """`prometheus` on 127.0.0.1:<free port> over a data folder, with optional rules and scrape targets."""

    def __init__(
        self,
        data_dir: Path,
        rule_files: Sequence[Path] = (),
        *,
        evaluation_interval: str = "15s",
        alertmanager: str | None = None,
        scrape: dict[str, str] | None = None,  # job name -> host:port, scraped every second
    ) -> None:
        self.data_dir = data_dir
        self.rule_files = list(rule_files)
        self.evaluation_interval = evaluation_interval
        self.alertmanager = alertmanager
        self.scrape = scrape or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"global": {"evaluation_interval": self.evaluation_interval}}
        if self.rule_files:
            config["rule_files"] = [str(path) for path in self.rule_files]
        if self.alertmanager:
            target = self.alertmanager.removeprefix("http://")
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}
        if self.scrape:
            config["scrape_configs"] = [
                {"job_name": job, "scrape_interval": "1s", "static_configs": [{"targets": [target]}]}
                for job, target in self.scrape.items()
            ]
        return config

    def start(self, keep_port: bool = False) -> PrometheusServer:
        self.port = self.port if self.process is None or keep_port else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = self.data_dir.parent / f"prometheus-{self.port}.yml"
        config.write_text(yaml.safe_dump(self.config()))
        self.log = (self.data_dir.parent / f"prometheus-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                "--storage.tsdb.retention.time=90d",
                f"--web.listen-address=127.0.0.1:{self.port}",
                # Alertmanagers are discovered about 5 s after start; without a short resend delay the
                # alerts that fired before that wait a whole minute to be sent again.
                "--rules.alert.resend-delay=1s",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.ready, timeout=60, what=f"prometheus on {self.url}")
        return self

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: see {self.log.name if self.log else 'its log'}")
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def stop(self) -> None:
        stop_process(self.process, self.log)
        self.log = None

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would; `start(keep_port=True)` brings it back."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.log is not None:
            self.log.close()
            self.log = None

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": promql} | ({"time": str(at)} if at is not None else {})
        body = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=30).json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


class AlertmanagerServer:
    """Alertmanager on 127.0.0.1:<free port>, routing every alert to one webhook with a bearer token."""

    def __init__(
        self,
        folder: Path,
        webhook_url: str,
        token: str,
        group_by: list[str] | None = None,
        *,
        group_wait: str = "0s",
        group_interval: str = "100ms",
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "route": {
                "receiver": "sloguard",
                "group_by": group_by or ["alertname", "service"],
                "group_wait": group_wait,
                "group_interval": group_interval,
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "sloguard",
                    "webhook_configs": [
                        {
                            "url": webhook_url,
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                        }
                    ],
                }
            ],
        }
        self.config = folder / "alertmanager.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    def start(self) -> AlertmanagerServer:
        self.log = (self.folder / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary("prometheus-alertmanager"),
                f"--config.file={self.config}",
                f"--storage.path={self.folder / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._ready, timeout=30, what=f"alertmanager on {self.url}")
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"alertmanager exited: see {self.folder / 'alertmanager.log'}")
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def post(
        self, labels: dict[str, str], annotations: dict[str, str] | None = None, *, resolve: bool = False
    ) -> None:
        alert: dict[str, Any] = {"labels": labels, "annotations": annotations or {}}
        if resolve:
            alert["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        response = httpx.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=10)
        response.raise_for_status()

    def stop(self) -> None:
        stop_process(self.process, self.log)
        self.log = None


def mlflow_binary(repo: Path | None = None) -> Path | None:
    """MLflow's server: $SLOGUARD_TEST_MLFLOW, the repo's .venv-mlflow (from `make test`), or PATH."""
    if explicit := os.environ.get("SLOGUARD_TEST_MLFLOW"):
        return Path(explicit)
    if repo is not None and (repo / ".venv-mlflow" / "bin" / "mlflow").exists():
        return repo / ".venv-mlflow" / "bin" / "mlflow"
    found = shutil.which("mlflow")
    return Path(found) if found else None


class MlflowServer:
    """A real MLflow tracking server with its model registry, on a SQLite store in `folder`."""

    def __init__(self, folder: Path, executable: Path, env: dict[str, str] | None = None) -> None:
        if not executable.exists():
            raise MissingBinary(f"{executable} not found: `make test` installs MLflow into .venv-mlflow")
        self.folder, self.executable = folder, executable
        self.env = env or {}  # more environment for the server (its webhooks' settings, say)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    def start(self) -> MlflowServer:
        self.log = (self.folder / "mlflow.log").open("wb")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.env}
        self.process = subprocess.Popen(
            [
                str(self.executable),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.folder / 'mlflow.db'}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.folder,
        )
        wait_until(self._healthy, timeout=120, interval=0.5, what=f"mlflow on {self.url}")
        return self

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"mlflow exited: see {self.folder / 'mlflow.log'}")
        return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

    def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = httpx.request(method, f"{self.url}/api/2.0/mlflow/{path}", timeout=10, **kwargs)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def register(self, name: str, versions: int) -> None:
        self.api("POST", "registered-models/create", json={"name": name})
        for number in range(1, versions + 1):
            self.api(
                "POST", "model-versions/create", json={"name": name, "source": f"s3://models/{name}/{number}"}
            )

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.api("POST", "registered-models/alias", json={"name": name, "alias": alias, "version": version})

    def alias(self, name: str, alias: str) -> str:
        body = self.api("GET", "registered-models/alias", params={"name": name, "alias": alias})
        return str(body["model_version"]["version"])

    def stop(self) -> None:
        stop_process(self.process, self.log)
        self.log = None
