"""How fast sloguard acknowledges Slack slash commands (Slack gives up after 3 seconds).

    .venv/bin/python bench/slack_ack.py [--commands 1000] [--web-api-delay 0.05] [--concurrency 10]

Runs the real service on SQLite with a local Slack Web API that delays every call, sends signed
`/incident list` and `/incident declare` commands exactly as Slack does, and prints p50/p90/p99 of the
time until the HTTP answer (the ack). As a baseline in the same process it times `GET /healthz`, so the
ratio shows what the Slack path costs over the plainest route.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.servers import UvicornThread

SECRET = "bench-signing-secret-0123456789"


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return (
        f"p50 {pick(0.50):.1f} ms, p90 {pick(0.90):.1f} ms, p99 {pick(0.99):.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--web-api-delay", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        slack.delay = args.web_api_delay
        settings = make_settings(
            Path(tmp),
            slack_bot_token="xoxb-bench-0000-token",
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            slack_channel="C-BENCH",
        )
        with (
            UvicornThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):

            def command(index: int) -> float:
                text = f"declare bench incident {index}" if index % 10 == 0 else "list"
                body = urlencode(
                    {
                        "command": "/incident",
                        "text": text,
                        "user_id": "U1",
                        "channel_id": "C1",
                        "response_url": slack.response_url(),
                        "trigger_id": f"bench.{index}",  # Slack gives every request its own
                    }
                )
                started = time.perf_counter()
                response = http.post("/slack/events", content=body, headers=signed(body))
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"command {index}: HTTP {response.status_code}")
                return elapsed

            def health(_: int) -> float:
                started = time.perf_counter()
                http.get("/healthz").raise_for_status()
                return time.perf_counter() - started

            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                baseline = list(pool.map(health, range(args.commands)))
                acks = list(pool.map(command, range(args.commands)))
            print(
                f"slash command acks ({args.commands}, Web API delay {args.web_api_delay * 1000:.0f} ms, "
                f"{args.concurrency} at once): {percentiles(acks)}"
            )
            print(f"baseline GET /healthz ({args.commands}): {percentiles(baseline)}")
            print(
                f"median ack / median healthz = {statistics.median(acks) / statistics.median(baseline):.1f}x"
            )
            # Every command is answered on its response_url once the slow Web API lets it through.
            deadline = time.monotonic() + 120
            while len(slack.called("/response/cmd")) < args.commands and time.monotonic() < deadline:
                time.sleep(0.2)
            answered = len(slack.called("/response/cmd"))
            print(f"commands answered on their response_url: {answered} of {args.commands}")
            print(f"Web API calls made after the acks: {len(slack.calls)}")


if __name__ == "__main__":
    main()
