"""How many queries and how long one SLO evaluation cycle takes, against a real Prometheus.

    .venv/bin/python bench/slo_eval.py [--slos 5000] [--direct-slos 500] [--hours 3] [--service-cycles 3]

Generates N SLOs (Sloth format, one service each) with their own request counters, backfills a few
hours of history with promtool, loads the rules `sloguard slo rules` writes into a real Prometheus,
waits until every rule group has run, then times evaluation cycles in batch mode (the recording rules,
one query per window for all SLOs) and in direct mode (one query per SLO) over a subset. Prints
figures and the per-SLO cost ratio of the two modes measured in the same process. Goal: 5,000 SLOs in
at most 20 queries and 10 s a cycle.

The ratio to beat is Prometheus's own work for the same SLOs: its rule groups' last evaluation times
(`prometheus_rule_group_last_duration_seconds`, summed over the generated groups, read from the bench's
Prometheus: wall time, which counts waiting for a CPU, since groups run concurrently) and, steadier, the
CPU time the Prometheus process spends over one evaluation interval (with the group runs it made and
missed in it). The engine here runs in this process, so the
service's memory is measured apart: a real `sloguard serve` with the same SLO files and this Prometheus,
evaluating every few seconds, and its peak RSS (VmHWM) after a few cycles, next to the same service with
no SLOs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.config import SloOptions
from app.slo import rules
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.prometheus import PrometheusServer, Series, backfill, write_openmetrics
from tests.servers import free_port, stop_process, wait_until

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


def timed_cycles(engine: SloEngine, cycles: int) -> tuple[float, int, float]:
    """Median wall time of a cycle, queries a cycle, and median CPU time of this process a cycle."""
    durations, cpu = [], []
    for _ in range(cycles):
        started, started_cpu = time.perf_counter(), time.process_time()
        engine.evaluate(datetime.now(UTC), remember=False)
        durations.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(durations), engine.last_stats.queries, statistics.median(cpu)


def prometheus_samples(url: str) -> dict[str, float]:
    """Prometheus's own metrics about the generated rule groups and its process, summed by name."""
    wanted = (
        "prometheus_rule_group_last_duration_seconds",
        "prometheus_rule_group_iterations_total",
        "prometheus_rule_group_iterations_missed_total",
    )
    totals = dict.fromkeys((*wanted, "process_cpu_seconds_total"), 0.0)
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            group = sample.labels.get("rule_group", "").partition(";")[2]
            if sample.name in wanted and group.startswith("sloguard-slo-"):
                totals[sample.name] += sample.value
            elif sample.name == "process_cpu_seconds_total":
                totals[sample.name] = sample.value
    return totals


def prometheus_rule_cost(url: str, interval: float) -> tuple[str, float, float]:
    """Prometheus's work for the same SLOs: the groups' last durations (wall time, as the metric has it;
    groups run concurrently, so waiting for a CPU counts too) and the CPU it spends in one interval."""
    before = prometheus_samples(url)
    time.sleep(interval)
    after = prometheus_samples(url)
    body = httpx.get(f"{url}/api/v1/rules", timeout=120).json()
    groups = [g for g in body["data"]["groups"] if g["name"].startswith("sloguard-slo-")]
    group_time = sum(g["evaluationTime"] for g in groups)
    recording = sum(r["evaluationTime"] for g in groups for r in g["rules"] if r["type"] == "recording")
    delta = {name: after[name] - before[name] for name in after}
    return (
        (
            f"{after['prometheus_rule_group_last_duration_seconds']:.2f} s summed over {len(groups)} groups "
            f"(prometheus_rule_group_last_duration_seconds, wall time; recording rules "
            f"{recording / group_time:.0%} of it); "
            f"{delta['process_cpu_seconds_total']:.2f} CPU s in one {interval:g} s interval, "
            f"{delta['prometheus_rule_group_iterations_total']:.0f} group runs, "
            f"{delta['prometheus_rule_group_iterations_missed_total']:.0f} missed"
        ),
        after["prometheus_rule_group_last_duration_seconds"],
        delta["process_cpu_seconds_total"],
    )


def service_cycles(url: str) -> float:
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)
    return sum(
        sample.value
        for family in families
        if family.name == "sloguard_slo_evaluation_cycles"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0])
    return fields


def service_memory(
    folder: Path, slo_dir: Path, prometheus_url: str, cycles: int
) -> tuple[dict[str, int], float]:
    """Peak and current RSS of `sloguard serve` after `cycles` evaluation cycles, and how long they took."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLOGUARD_", "OTEL_"))} | {
        "SLOGUARD_DATABASE_URL": f"sqlite:///{folder / f'service-{port}.db'}",
        "SLOGUARD_SLO_DIR": str(slo_dir),
        "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
        "SLOGUARD_POSTMORTEM_DIR": str(folder / "postmortems"),
        "SLOGUARD_PROMETHEUS_URL": prometheus_url,
        "SLOGUARD_SOURCE_TIMEOUT": "60",
        "SLOGUARD_EVAL_INTERVAL": "5s",  # cycles back to back: missed runs coalesce
        "SLOGUARD_LOG_LEVEL": "WARNING",
    }
    log = (folder / f"service-{port}.log").open("wb")
    command = [str(Path(sys.executable).parent / "sloguard"), "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        started = time.perf_counter()

        def done() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"sloguard serve exited: see {log.name}")
            return service_cycles(url) >= cycles

        wait_until(done, timeout=900, interval=1, what=f"{cycles} evaluation cycles of sloguard serve")
        return memory_kib(process.pid), time.perf_counter() - started
    finally:
        stop_process(process, log)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slos", type=int, default=5000)
    parser.add_argument("--direct-slos", type=int, default=500)
    parser.add_argument("--hours", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument(
        "--service-cycles",
        type=int,
        default=3,
        help="evaluation cycles of `sloguard serve` before reading RSS",
    )
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
            summary, rule_wall, rule_cpu = prometheus_rule_cost(server.url, 30.0)
            print(f"Prometheus's own evaluation of the same rules: {summary}")
            source = PrometheusSource(server.url, timeout=60)

            batch = SloEngine(slos, source, None, SloOptions(batch=True, concurrency=8))
            batch_time, batch_queries, batch_cpu = timed_cycles(batch, args.cycles)
            print(
                f"batch  mode: {args.slos} SLOs, {batch_queries} queries a cycle, {batch_time:.2f} s a cycle "
                f"(median of {args.cycles}); goal <= 20 queries and <= 10 s"
            )

            subset = slos[: args.direct_slos]
            direct = SloEngine(subset, source, None, SloOptions(batch=False, concurrency=8))
            direct_time, direct_queries, _ = timed_cycles(direct, args.cycles)
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
            print(
                f"ratio to beat: batch cycle {batch_time:.2f} s wall / {rule_wall:.2f} s of Prometheus's "
                f"summed group durations = {batch_time / rule_wall:.3f}x; "
                f"batch cycle {batch_cpu:.2f} CPU s (this process) / Prometheus's {rule_cpu:.2f} CPU s "
                f"an interval = {batch_cpu / rule_cpu:.2f}x"
            )
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS of this process: {peak:.0f} MiB")

            memory, elapsed = service_memory(folder, folder / "slo", server.url, args.service_cycles)
            (folder / "empty").mkdir()
            empty, _ = service_memory(folder, folder / "empty", server.url, args.service_cycles)
            per_slo = (memory["VmHWM"] - empty["VmHWM"]) / args.slos
            print(
                f"sloguard serve, {args.slos} SLOs, after {args.service_cycles} evaluation cycles "
                f"({elapsed:.0f} s): peak RSS {memory['VmHWM'] / 1024:.0f} MiB, "
                f"now {memory['VmRSS'] / 1024:.0f} MiB; with no SLOs: peak {empty['VmHWM'] / 1024:.0f} MiB "
                f"({memory['VmHWM'] / empty['VmHWM']:.1f}x, {per_slo:.1f} KiB per SLO)"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
