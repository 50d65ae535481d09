"""What a personal token costs per request: the same route with the automation token (compared in memory)
and with a personal token (looked up by hash in the database on every request, no cache).

    .venv/bin/python bench/auth.py [--requests 2000] [--concurrency 8] [--backend sqlite|postgresql|both]

A real `sloguard serve` (its scheduler off) answers `GET /api/v1/whoami`, which reads nothing else, so the
difference between the two runs is the token lookup (and, once a minute, the last-use write). Each run
first warms up, then sends --requests requests, --concurrency at a time, and prints throughput, p50 and p99;
the ratio is the personal token's figure over the automation token's, both measured in this same process.
PostgreSQL uses a new database on 127.0.0.1:5432 (dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import personal_token  # noqa: E402
from tests.servers import free_port, stop_process, wait_until  # noqa: E402

AUTOMATION = "bench-automation-token-0123456789abcdef"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def serve(folder: Path, database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (folder / "slo").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLOGUARD_", "OTEL_"))} | {
        "SLOGUARD_DATABASE_URL": database_url,
        "SLOGUARD_API_TOKEN": AUTOMATION,
        "SLOGUARD_SLO_DIR": str(folder / "slo"),
        "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
        "SLOGUARD_SCHEDULER_ENABLED": "false",
        "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",
        "SLOGUARD_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=60, interval=0.2, what="sloguard serve")
    return process, url


async def run(url: str, token: str, count: int, concurrency: int) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    queue = iter(range(count))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                answer = await client.get("/api/v1/whoami")
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"whoami answered {answer.status_code}: {answer.text}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def measure(url: str, token: str, count: int, concurrency: int) -> tuple[float, float, float]:
    asyncio.run(run(url, token, max(100, count // 10), concurrency))  # warm up
    elapsed, latencies = asyncio.run(run(url, token, count, concurrency))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return count / elapsed, statistics.median(ordered) * 1000, p99 * 1000


def bench(backend: str, database_url: str, folder: Path, count: int, concurrency: int) -> None:
    token = personal_token(database_url, "U0BENCH", "read")
    process, url = serve(folder, database_url)
    try:
        figures = {
            "automation": measure(url, AUTOMATION, count, concurrency),
            "personal": measure(url, token, count, concurrency),
        }
    finally:
        stop_process(process, None)
    base = figures["automation"]
    for name, (rate, p50, p99) in figures.items():
        print(
            f"{backend:<10} {name:<10} {rate:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
            f"(x{rate / base[0]:.2f} throughput, x{p50 / base[1]:.2f} p50 of the automation token's)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(f"GET /api/v1/whoami, {args.requests} requests, {args.concurrency} at a time", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.backend in ("sqlite", "both"):
            bench("sqlite", f"sqlite:///{folder / 'bench.db'}", folder, args.requests, args.concurrency)
        if args.backend in ("postgresql", "both"):
            name = f"sloguard_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            try:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                bench("postgresql", url, folder, args.requests, args.concurrency)
            finally:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
