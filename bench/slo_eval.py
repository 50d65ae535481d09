"""How many queries and how long one SLO evaluation cycle takes, against a real Prometheus.

    .venv/bin/python bench/slo_eval.py [--slos 5000] [--direct-slos 500] [--hours 3]

Generates N SLOs (Sloth format, one service each) with their own request counters, backfills a few
hours of history with promtool, loads the rules `sloguard slo rules` writes into a real Prometheus,
waits until every rule group has run, then times evaluation cycles in batch mode (the recording rules,
one query per window for all SLOs) and in direct mode (one query per SLO) over a subset. Prints
figures and the per-SLO cost ratio of the two modes measured in the same process. Goal: 5,000 SLOs in
at most 20 queries and 10 s a cycle.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import SloOptions
from app.slo import rules
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.prometheus import PrometheusServer, Series, backfill, write_openmetrics
from tests.servers import wait_until

STEP = 60
WINDOW = "{{.window}}"


def write_specs(folder: Path, count: int) -> None:
    lines = ['version: "prometheus/v1"', 'service: "bench"', "slos:"]
    for index in range(count):
        lines += [
            f'  - name: "slo{index}"',
            "    objective: 99.9",
            "    sli:",
            "      events:",
            f'        error_query: sum(rate(bench_requests_total{{slo="{index}",code="500"}}[{WINDOW}]))',
            f'        total_query: sum(rate(bench_requests_total{{slo="{index}"}}[{WINDOW}]))',
            "    alerting:",
            f"      name: Bench{index}",
        ]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def series(count: int, end: int, hours: int) -> list[Series]:
    start = end - hours * 3600
    out = []
    for index in range(count):
        bad_share = (index % 50) / 1000  # 0 % to 4.9 %: a spread of states

        def bad(t: int, share: float = bad_share) -> float:
            return 1000 + (t - start) * 10 * share

        def good(t: int, share: float = bad_share) -> float:
            return 1000 + (t - start) * 10 * (1 - share)

        out.append(Series("bench_requests_total", {"slo": str(index), "code": "500"}, bad))
        out.append(Series("bench_requests_total", {"slo": str(index), "code": "200"}, good))
    return out


def timed_cycles(engine: SloEngine, cycles: int) -> tuple[float, int]:
    durations = []
    for _ in range(cycles):
        started = time.perf_counter()
        engine.evaluate(datetime.now(UTC), remember=False)
        durations.append(time.perf_counter() - started)
    return statistics.median(durations), engine.last_stats.queries


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slos", type=int, default=5000)
    parser.add_argument("--direct-slos", type=int, default=500)
    parser.add_argument("--hours", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sloguard-bench-") as tmp:
        folder = Path(tmp)
        (folder / "slo").mkdir()
        write_specs(folder / "slo", args.slos)
        slos = load_specs([folder / "slo"])
        end = (int(time.time()) - 20) // STEP * STEP

        started = time.perf_counter()
        write_openmetrics(
            folder / "history.om", series(args.slos, end, args.hours), end - args.hours * 3600, end, STEP
        )
        backfill(folder / "history.om", folder / "data")
        elapsed = time.perf_counter() - started
        print(f"history: {2 * args.slos} series x {args.hours} h, backfilled in {elapsed:.1f} s")

        rule_file = folder / "rules.yml"
        rule_file.write_text(rules.render(slos))
        server = PrometheusServer(folder / "data", [rule_file], evaluation_interval="30s").start()
        try:
            started = time.perf_counter()
            wait_until(
                lambda: len(server.query("slo:sli_error:ratio_rate30d")) == args.slos,
                timeout=900,
                interval=2,
                what="every rule group evaluated",
            )
            elapsed = time.perf_counter() - started
            print(f"rules: {args.slos} groups evaluated by Prometheus after {elapsed:.1f} s")
            source = PrometheusSource(server.url, timeout=60)

            batch = SloEngine(slos, source, None, SloOptions(batch=True, concurrency=8))
            batch_time, batch_queries = timed_cycles(batch, args.cycles)
            print(
                f"batch  mode: {args.slos} SLOs, {batch_queries} queries a cycle, {batch_time:.2f} s a cycle "
                f"(median of {args.cycles}); goal <= 20 queries and <= 10 s"
            )

            subset = slos[: args.direct_slos]
            direct = SloEngine(subset, source, None, SloOptions(batch=False, concurrency=8))
            direct_time, direct_queries = timed_cycles(direct, args.cycles)
            print(
                f"direct mode: {len(subset)} SLOs, {direct_queries} queries a cycle, "
                f"{direct_time:.2f} s a cycle (median of {args.cycles})"
            )
            per_slo_batch = batch_time / args.slos
            per_slo_direct = direct_time / len(subset)
            print(
                f"per SLO: batch {per_slo_batch * 1000:.3f} ms, direct {per_slo_direct * 1000:.3f} ms "
                f"(direct/batch = {per_slo_direct / per_slo_batch:.1f}x)"
            )
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS of this process: {peak:.0f} MiB")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
