"""Real Prometheus 2.x and promtool (Debian's `prometheus` package) for the tests.

History is written as OpenMetrics, turned into TSDB blocks by `promtool tsdb create-blocks-from
openmetrics`, and served by a real `prometheus` on a free loopback port.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.servers import free_port, stop_process, wait_until


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: `make test` installs Debian's prometheus package")
    return path


@dataclass(frozen=True)
class Series:
    """A counter (or histogram part) sampled every `step` seconds from `start` to `end` inclusive."""

    name: str  # full sample name, e.g. http_requests_total
    labels: dict[str, str]
    value_at: Callable[[int], float]


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
            kind = "histogram" if any(m.name.endswith("_bucket") for m in members) else "counter"
            out.write(f"# TYPE {family} {kind}\n")
            for member in members:
                labels = ",".join(f'{key}="{value}"' for key, value in sorted(member.labels.items()))
                for t in range(start, end + 1, step):
                    out.write(f"{member.name}{{{labels}}} {member.value_at(t)!r} {t}\n")
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


class PrometheusServer:
    """`prometheus` on 127.0.0.1:<free port> over a data folder, with optional rule files."""

    def __init__(
        self,
        data_dir: Path,
        rule_files: Sequence[Path] = (),
        *,
        evaluation_interval: str = "15s",
        alertmanager: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.rule_files = list(rule_files)
        self.evaluation_interval = evaluation_interval
        self.alertmanager = alertmanager
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        config = self.data_dir.parent / f"prometheus-{self.port}.yml"
        rules = "".join(f"  - {path}\n" for path in self.rule_files)
        alerting = ""
        if self.alertmanager:
            target = self.alertmanager.removeprefix("http://")
            alerting = (
                f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{target}']\n"
            )
        config.write_text(
            f"global:\n  evaluation_interval: {self.evaluation_interval}\n"
            + (f"rule_files:\n{rules}" if rules else "")
            + alerting
        )
        self.port = self.port if self.process is None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
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
            raise RuntimeError(f"prometheus exited: see {self.log.name}")
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def stop(self) -> None:
        stop_process(self.process, getattr(self, "log", None))

    def query(self, promql: str, at: float | None = None) -> list[dict[str, object]]:
        params = {"query": promql} | ({"time": str(at)} if at is not None else {})
        body = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=30).json()
        assert body["status"] == "success", body
        result: list[dict[str, object]] = body["data"]["result"]
        return result


def promtool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=timeout)


def aligned_now(step: int, margin: int = 600) -> int:
    """A sample-aligned time safely in the past (samples after `now` break later appends)."""
    return (int(time.time()) - margin) // step * step
