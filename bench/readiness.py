"""Does /readyz starve the server when Prometheus hangs? /healthz and the API alone vs during a /readyz storm.

    .venv/bin/python bench/readiness.py [--samples 200] [--concurrency 50] [--max-seconds 30]

A Prometheus stand-in that accepts TCP connections and never answers (a raw socket server in this
process) sits behind a real `sloguard serve` on SQLite, with the shipped source timeout (10 s). First
`GET /healthz` and `GET /api/v1/incidents` are timed one after the other with the server idle (the
baseline); then a load process (a child, so that its event loop shares no GIL with the sampler) keeps
`--concurrency` `GET /readyz` in flight while the same requests are timed again. Prints p50/p99 of each
route alone and during the storm, the ratio to the baseline measured in this same run, the /readyz
latencies themselves, and what the SQLite storage check costs per transaction (one os.stat).

The server runs from this checkout (`python -m app.cli` in the repository this file is in), so a copy
of this file in a git worktree of an older commit measures that commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import IO

import aiohttp
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers import free_port, stop_process, wait_until

API_TOKEN = "bench-api-token-0123456789abcdef"


class SilentServer:
    """Accepts connections and holds them, never sending a byte: a Prometheus that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values: list[float]) -> tuple[float, float]:
    return statistics.median(values) * 1000, percentile(values, 0.99) * 1000


def sample(url: str, path: str, count: int, max_seconds: float, headers: dict[str, str]) -> list[float]:
    """`count` requests one after the other (or as many as fit in `max_seconds`), each timed."""
    timings: list[float] = []
    deadline = time.monotonic() + max_seconds
    with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
        http.get(path)  # a connection made, not timed
        while len(timings) < count and time.monotonic() < deadline:
            started = time.monotonic()
            response = http.get(path)
            timings.append(time.monotonic() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
    return timings


# ---------------------------------------------------------------- the load process


async def keep_asking(url: str, concurrency: int, stop: asyncio.Event) -> list[float]:
    # aiohttp, not httpx: under 50 concurrent requests httpx's async pool costs the client more than the
    # server spends on /readyz, and the figures would measure the client.
    timings: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as http:

        async def one() -> None:
            while not stop.is_set():
                started = time.monotonic()
                async with http.get("/readyz") as response:
                    await response.read()
                timings.append(time.monotonic() - started)

        tasks = [asyncio.create_task(one()) for _ in range(concurrency)]
        await stop.wait()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
    return timings


def run_load(url: str, concurrency: int) -> None:
    """Until SIGTERM: `concurrency` /readyz in flight; then the timings as JSON on stdout."""

    async def main() -> list[float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await keep_asking(url, concurrency, stop)

    json.dump(asyncio.run(main()), sys.stdout)


# ---------------------------------------------------------------- the run


def serve(folder: Path, prometheus_url: str) -> tuple[subprocess.Popen[bytes], str, IO[bytes]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLOGUARD_", "OTEL_"))} | {
        "SLOGUARD_DATABASE_URL": f"sqlite:///{folder / 'sloguard.db'}",
        "SLOGUARD_API_TOKEN": API_TOKEN,
        "SLOGUARD_PROMETHEUS_URL": prometheus_url,
        "SLOGUARD_SLO_DIR": str(folder / "slo"),
        "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
        "SLOGUARD_SCHEDULER_ENABLED": "false",  # readiness alone: no evaluation cycles
        "SLOGUARD_LOG_LEVEL": "WARNING",
    }
    log = (folder / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200, timeout=60, what="serve")
    return process, url, log


def storage_check_cost(folder: Path) -> float | None:
    """Microseconds per SQLite transaction that the file check adds (None on a checkout without it)."""
    try:
        from app.db import StorageGuard
    except ImportError:
        return None
    path = folder / "stat-me.db"
    path.write_bytes(b"")
    guard = StorageGuard(str(path), str(path))
    guard.pin("bench")
    runs = 200_000
    return timeit.timeit(guard.check_file, number=runs) / runs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=30.0, help="cap on each timed phase")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: run as the load process
    args = parser.parse_args()
    if args.load:
        run_load(args.load, args.concurrency)
        return

    silent = SilentServer()
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    routes = {"/healthz": {}, "/api/v1/incidents": auth}
    with tempfile.TemporaryDirectory(prefix="bench-readiness-") as tmp:
        folder = Path(tmp)
        process, url, log = serve(folder, silent.url)
        try:
            alone = {path: sample(url, path, args.samples, args.max_seconds, h) for path, h in routes.items()}
            load = subprocess.Popen(
                [sys.executable, __file__, "--load", url, "--concurrency", str(args.concurrency)],
                stdout=subprocess.PIPE,
                cwd=REPO,
            )
            time.sleep(1.0)  # let every /readyz of the storm be in flight before timing
            during = {
                path: sample(url, path, args.samples, args.max_seconds, h) for path, h in routes.items()
            }
            load.send_signal(signal.SIGTERM)
            out, _ = load.communicate(timeout=60)
            readyz = json.loads(out or b"[]")
        finally:
            stop_process(process, log)
        stat_us = storage_check_cost(folder)

    print(f"sloguard at {REPO}; Prometheus accepts and never answers; {args.concurrency} concurrent /readyz")
    print(f"{'':<20}{'alone':>24}{'during the /readyz storm':>26}{'ratio to alone':>20}")
    print(f"{'route':<20}{'p50':>12}{'p99':>12}{'p50':>13}{'p99':>13}{'p50':>10}{'p99':>10}  samples")
    for path in routes:
        a50, a99 = summary(alone[path])
        d50, d99 = summary(during[path])
        print(
            f"{path:<20}{a50:>10.2f}ms{a99:>10.2f}ms{d50:>11.2f}ms{d99:>11.2f}ms"
            f"{d50 / a50:>9.1f}x{d99 / a99:>9.1f}x  {len(alone[path])}/{len(during[path])}"
        )
    if readyz:
        r50, r99 = summary(readyz)
        print(f"{'/readyz (the storm)':<20}{'':>24}{r50:>11.2f}ms{r99:>11.2f}ms{'':>20}  {len(readyz)}")
    if stat_us is not None:
        print(f"SQLite storage check (os.stat at each transaction begin): {stat_us:.2f} µs")


if __name__ == "__main__":
    main()
