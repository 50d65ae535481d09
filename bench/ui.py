"""The console's two list pages at scale, on PostgreSQL: the SLO overview with 5,000 SLOs (one page of 100,
each with its sparkline over the last day) and the incident list with 10,000 incidents, next to `/healthz`.

    .venv/bin/python bench/ui.py [--slos 5000] [--services 50] [--incidents 10000] [--requests 200]
                                 [--density 1440] [--hours 24] [--vacuum-lag 0] [--minutes 10]

Generates the SLO specs (Sloth prometheus/v1, one file per service, a few of them linked to a model) and a
new database on 127.0.0.1:5432 (dropped afterwards), migrated with `sloguard db upgrade`. It is seeded with
COPY: `--density` evaluation cycles a day (1,440 = every minute, what the scheduler stores) over the last
`--hours`, each cycle one row per SLO sharing one `evaluated_at` as `store` writes them, with the windows
JSON of the SLO's tiers, a budget spread over 0..1, a state and the page tier's burn; then the incidents
with a few timeline events each. A real `sloguard serve` (scheduler off, Prometheus on a port nobody
listens on) answers the pages of a session signed in with a personal read token, one keep-alive client,
one request at a time, the routes taking turns so that each sees the same machine (at most `--minutes`
of rounds: a slow page gets fewer than `--requests`). The figures are p50, p95 and max, and p95 over
`/healthz`'s p95 of the same run, with the load average around them (other work on the machine shows in
both). Target: p95 < 150 ms on every page.

Then the same route's database work is repeated in this process against the same database, counting its
statements and the time spent in them, to say whether a slow page is slow in SQL or in Python.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app import db  # noqa: E402
from app.incidents.models import CLOSED_STATUSES, Incident, TimelineEvent  # noqa: E402
from app.slo import service as slos  # noqa: E402
from app.slo.model import Slo  # noqa: E402
from app.slo.spec import load_specs  # noqa: E402
from tests.servers import free_port, stop_process, wait_until  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AUTOMATION = "bench-automation-token-0123456789abcdef"
TARGET_MS = 150.0
MODELS = ("fraud-detector", "churn-predictor", "ranker", "embedder")
OBJECTIVES = (99.0, 99.5, 99.9, 99.95)
WINDOW = "{{.window}}"


# ---------------------------------------------------------------- the SLO specs


def write_specs(folder: Path, count: int, services: int) -> None:
    """`count` SLOs over `services` files; every third service is linked to one of a few models."""
    per = math.ceil(count / services)
    made = 0
    for number in range(services):
        name = f"svc-{number:03d}"
        lines = ['version: "prometheus/v1"', f'service: "{name}"', "labels:", f'  owner: "team-{number % 7}"']
        if number % 3 == 0:
            lines.append(f'  model: "{MODELS[number // 3 % len(MODELS)]}"')
        lines.append("slos:")
        for index in range(min(per, count - made)):
            selector = f'service="{name}",route="r{index}"'
            lines += [
                f'  - name: "route-{index:03d}"',
                f"    objective: {OBJECTIVES[(number + index) % len(OBJECTIVES)]}",
                f'    description: "Requests to route {index} of {name} succeed."',
                "    sli:",
                "      events:",
                f'        error_query: sum(rate(http_requests_total{{{selector},code=~"5.."}}[{WINDOW}]))',
                f"        total_query: sum(rate(http_requests_total{{{selector}}}[{WINDOW}]))",
                "    alerting:",
                f"      name: Svc{number:03d}Route{index:03d}",
                "      page_alert:",
                "        labels:",
                "          severity: page",
                "      ticket_alert:",
                "        labels:",
                "          severity: ticket",
            ]
            made += 1
        (folder / f"{name}.yaml").write_text("\n".join(lines) + "\n")
        if made >= count:
            break


# ---------------------------------------------------------------- the database


def new_database() -> tuple[str, str]:
    name = f"sloguard_bench_ui_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def environment(folder: Path, database_url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLOGUARD_", "OTEL_"))} | {
        "SLOGUARD_DATABASE_URL": database_url,
        "SLOGUARD_API_TOKEN": AUTOMATION,
        "SLOGUARD_SLO_DIR": str(folder / "slo"),
        "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
        "SLOGUARD_SCHEDULER_ENABLED": "false",
        "SLOGUARD_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "SLOGUARD_LOG_LEVEL": "WARNING",
    }


def sloguard(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"sloguard {' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def _figure(value: float | None) -> str:
    return r"\N" if value is None else repr(value)


def _text(value: str | None) -> str:
    return r"\N" if value is None else value


class History:
    """What each SLO's evaluations look like: a base burn, a daily wave, and for some an episode that
    pages; the windows JSON comes from a few hundred burn levels, each rendered once."""

    LEVELS = 240  # burn rates 0.01 .. 100 on a log scale

    def __init__(self, specs: list[Slo], seed: int = 7) -> None:
        self.rng = random.Random(seed)
        shape = specs[0]
        self.windows = [w.name for w in shape.windows]
        self.period = shape.period_seconds
        self.variants = [self._variant(shape, level) for level in range(self.LEVELS)]
        self.no_data = json.dumps(
            {name: dict.fromkeys(("error_ratio", "burn_rate", "events")) for name in self.windows}
        )
        self.per_slo = []
        for spec in specs:
            kind = self.rng.random()
            self.per_slo.append(
                {
                    "id": spec.id,
                    "budget": self.rng.random(),  # the newest cycle's budget left: spread over 0..1
                    "drift": self.rng.uniform(0.0, 0.05),  # budget spent per day
                    "base": math.exp(self.rng.gauss(-1.2, 1.0)),
                    "phase": self.rng.uniform(0, 2 * math.pi),
                    "episode": self.rng.uniform(0.05, 0.95) if kind < 0.08 else None,  # share of the span
                    "no_data": 0.98 < kind,
                }
            )

    def _variant(self, shape: Slo, level: int) -> tuple[str, float | None, str, str | None]:
        burn = 10 ** (-2 + 4 * level / (self.LEVELS - 1))
        windows: dict[str, dict[str, float | None]] = {}
        for position, name in enumerate(self.windows):
            rate = burn * (1.0 + 0.37 * math.sin(level * 1.7 + position))  # shorter windows move more
            events = 1234.5 * [w.seconds for w in shape.windows][position] / 60
            windows[name] = {"error_ratio": rate * shape.budget, "burn_rate": rate, "events": events}
        page = slos.page_burn(shape, windows)
        fired = [
            t
            for t in shape.tiers
            if all((windows[w.name]["burn_rate"] or 0) > t.factor for w in (t.short, t.long))
        ]
        pages = [t for t in fired if t.severity.value == "page"]
        state, tier = (
            ("page", pages[0].name) if pages else ("ticket", fired[0].name) if fired else ("ok", None)
        )
        return json.dumps(windows), page, state, tier

    def level(self, slo: dict[str, Any], share: float) -> int:
        """The burn level of an SLO at `share` of the span (0 oldest, 1 newest)."""
        burn = slo["base"] * (1.0 + 0.6 * math.sin(slo["phase"] + 2 * math.pi * share))
        if slo["episode"] is not None and 0 <= share - slo["episode"] < 0.03:
            burn += 25.0
        position = (math.log10(max(burn, 0.01)) + 2) / 4 * (self.LEVELS - 1)
        return min(self.LEVELS - 1, max(0, round(position)))

    def cycle(self, at: datetime, share: float, hours_ago: float) -> str:
        stamp = at.isoformat()
        lines = []
        for slo in self.per_slo:
            if slo["no_data"]:
                lines.append(
                    f"{slo['id']}\t{stamp}\t{self.no_data}\t\\N\tno_data\t\\N\t\\N\tno window returned data"
                    "\t\\N\t\\N\t\\N\n"
                )
                continue
            windows, page, state, tier = self.variants[self.level(slo, share)]
            budget = min(1.0, slo["budget"] + slo["drift"] * hours_ago / 24)
            burn_1h = page if page and page > 0 else 0.5
            exhaustion = budget * self.period / burn_1h
            lines.append(
                f"{slo['id']}\t{stamp}\t{windows}\t{budget!r}\t{state}\t{_text(tier)}\t{exhaustion!r}\t\\N"
                f"\trules\t{self.period}.0\t{_figure(page)}\n"
            )
        return "".join(lines)


STATUS_COLUMNS = (
    "slo_id, evaluated_at, windows, budget_remaining, state, tier, time_to_exhaustion, detail, "
    "budget_basis, budget_coverage, page_burn"
)


def seed_status(
    engine: sa.Engine, specs: list[Slo], density: int, hours: float, end: datetime, vacuum_lag: float
) -> tuple[int, float]:
    """COPY the evaluations, oldest cycle first (as the scheduler writes them), with the table's secondary
    indexes dropped during the load and built again after it, exactly as the migrations define them.

    The table is vacuumed after the cycles older than `vacuum_lag` hours: the newer ones are not yet
    all-visible (as autovacuum leaves the newest inserts), so an index-only scan over them reads the heap
    too; autovacuum is off for the table so that this stays so during the run. Returns the rows and the
    share of the table's pages that are all-visible."""
    history = History(specs)
    step = 86400 / density
    cycles = int(hours * 3600 / step)
    with engine.connect() as connection:
        indexes = connection.execute(
            sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'slo_status'")
        ).all()
        secondary = [(name, ddl) for name, ddl in indexes if not name.endswith("_pkey")]
        for name, _ in secondary:
            connection.execute(sa.text(f'DROP INDEX "{name}"'))
        connection.execute(sa.text("ALTER TABLE slo_status SET (autovacuum_enabled = false)"))
        connection.commit()

    def copy(numbers: range) -> None:
        raw = engine.raw_connection()
        try:
            driver: Any = raw.driver_connection
            with driver.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
                with cursor.copy(f"COPY slo_status ({STATUS_COLUMNS}) FROM STDIN") as loading:
                    for number in numbers:
                        ago = (cycles - 1 - number) * step
                        at = end - timedelta(seconds=ago)
                        loading.write(history.cycle(at, number / max(1, cycles - 1), ago / 3600))
            driver.commit()
        finally:
            raw.close()

    def run(statement: str) -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text(statement))

    vacuumed = max(0, min(cycles, cycles - math.ceil(vacuum_lag * 3600 / step)))
    copy(range(vacuumed))
    run("VACUUM slo_status")
    copy(range(vacuumed, cycles))
    with engine.connect() as connection:
        connection.execute(sa.text("SET maintenance_work_mem = '1GB'"))
        for _, ddl in secondary:
            connection.execute(sa.text(ddl))
        connection.commit()
    with engine.begin() as connection:
        # What each cycle's store keeps beside its rows where the schema has it: a sparkline rollup.
        if sa.inspect(connection).has_table("slo_spark"):
            connection.execute(
                sa.text(
                    "INSERT INTO slo_spark (slo_id, bucket, burn) SELECT slo_id, "
                    "CAST(floor(date_part('epoch', evaluated_at) / 900) AS BIGINT), max(page_burn) "
                    "FROM slo_status WHERE page_burn IS NOT NULL GROUP BY slo_id, 2"
                )
            )
    run("ANALYZE")
    with engine.connect() as connection:
        pages, visible = connection.execute(
            sa.text("SELECT relpages, relallvisible FROM pg_class WHERE relname = 'slo_status'")
        ).one()
    return cycles * len(specs), visible / max(1, pages)


def seed_incidents(engine: sa.Engine, specs: list[Slo], count: int, end: datetime) -> int:
    """`count` incidents over the last 90 days, most of them resolved, each with 3 to 6 timeline events."""
    rng = random.Random(11)
    statuses = (
        ["resolved"] * 90 + ["cancelled"] * 6 + ["triggered", "acknowledged", "mitigated"] + ["resolved"]
    )
    incidents, events = [], []
    for number in range(count):
        spec = specs[rng.randrange(len(specs))]
        status = statuses[rng.randrange(len(statuses))]
        detected = end - timedelta(seconds=rng.uniform(0, 90 * 86400))
        started = detected - timedelta(seconds=rng.uniform(30, 900))
        acked = detected + timedelta(seconds=rng.uniform(30, 600)) if status != "triggered" else None
        mitigated = (
            acked + timedelta(seconds=rng.uniform(300, 3600)) if acked and status != "acknowledged" else None
        )
        closed = status in CLOSED_STATUSES
        resolved = (mitigated or detected) + timedelta(seconds=rng.uniform(600, 7200)) if closed else None
        incidents.append(
            {
                "id": number + 1,
                "title": f"{spec.id} is burning its error budget",
                "service": spec.service,
                "slo_id": spec.id,
                "model": spec.model,
                "environment": "production",
                "severity": ("SEV1", "SEV2", "SEV3", "SEV3", "SEV4")[rng.randrange(5)],
                "summary": f"Page tier fired for {spec.id}.",
                "key": f"slo:{spec.id}:{number}",
                "status": status,
                "commander": f"U0{rng.randrange(40):03d}" if acked else None,
                "source": ("slo", "alertmanager", "manual")[rng.randrange(3)],
                "started_at": started,
                "detected_at": detected,
                "acknowledged_at": acked,
                "mitigated_at": mitigated,
                "resolved_at": resolved,
                "escalated_at": None,
                "slack_channel": "C0INCIDENTS",
                "slack_ts": f"{detected.timestamp():.6f}",
                "created_at": detected,
                "updated_at": resolved or mitigated or acked or detected,
            }
        )
        moments = [
            ("opened", detected, None),
            ("acknowledged", acked, "U0BENCH"),
            ("mitigated", mitigated, None),
        ]
        moments += [("note", detected + timedelta(seconds=rng.uniform(60, 900)), "U0BENCH")] * rng.randrange(
            3
        )
        moments.append((status, resolved, "U0BENCH"))
        for kind, at, actor in moments:
            if at is not None:
                events.append(
                    {
                        "incident_id": number + 1,
                        "at": at,
                        "kind": kind,
                        "actor": actor,
                        "text": kind,
                        "data": {},
                    }
                )
    with engine.begin() as connection:
        connection.execute(sa.insert(Incident.__table__), incidents)  # type: ignore[attr-defined]
        connection.execute(sa.insert(TimelineEvent.__table__), events)  # type: ignore[attr-defined]
        connection.execute(sa.text("SELECT setval('incident_id_seq', (SELECT max(id) FROM incident))"))
    return len(events)


# ---------------------------------------------------------------- the server and its pages


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"sloguard serve exited with {process.returncode}")
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=180, interval=0.2, what="sloguard serve /readyz")
    return process, url, time.perf_counter() - started


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/signin")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if form.status_code != 200 or found is None or "sloguard_signin" not in client.cookies:
        raise SystemExit(f"GET /signin answered {form.status_code} without a sign-in form")
    answer = client.post("/signin", data={"token": token, "csrf": found.group(1), "next": "/"})
    if answer.status_code != 303 or "sloguard_session" not in client.cookies:
        raise SystemExit(f"POST /signin answered {answer.status_code}: {answer.text[:300]}")


def check_page(path: str, answer: httpx.Response, slos_count: int, incidents_count: int) -> None:
    if answer.status_code != 200:
        raise SystemExit(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    if path.startswith("/?") or path == "/":
        shown = answer.text.count("<tr data-slo=")
        pages = math.ceil(slos_count / 100)
        if shown != min(100, slos_count) or f"of {pages}</span>" not in answer.text:
            raise SystemExit(f"GET {path} showed {shown} SLO rows, not a page of 100 of {pages} pages")
        if answer.text.count('class="spark-line"') < shown // 2:
            raise SystemExit(f"GET {path} drew fewer than half of its sparklines")
    elif path.startswith("/incidents"):
        shown = answer.text.count("<tr><td>")
        if shown != min(50, incidents_count) or f"Incidents ({incidents_count})" not in answer.text:
            raise SystemExit(f"GET {path} showed {shown} incident rows")


def measure(
    url: str,
    token: str,
    paths: list[str],
    requests: int,
    minutes: float,
    slos_count: int,
    incidents_count: int,
) -> dict[str, list[float]]:
    """Seconds of each request, the routes taking turns, one keep-alive client, one request at a time;
    fewer than `requests` rounds if they would take longer than `minutes` (slow pages)."""
    timings: dict[str, list[float]] = {path: [] for path in paths}
    with httpx.Client(base_url=url, timeout=60) as client:
        sign_in(client, token)
        for path in paths:
            check_page(path, client.get(path), slos_count, incidents_count)
        for _ in range(max(5, requests // 20)):  # warm up
            for path in paths:
                client.get(path)
        deadline = time.monotonic() + minutes * 60
        for _ in range(requests):
            for path in paths:
                started = time.perf_counter()
                answer = client.get(path)
                timings[path].append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise SystemExit(f"GET {path} answered {answer.status_code}")
            if time.monotonic() > deadline:
                break
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def report(timings: dict[str, list[float]], base: str, names: dict[str, str]) -> None:
    base_p95 = percentile(timings[base], 0.95)
    print(
        f"{'GET':<34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p95/healthz':>12}  p95 < {TARGET_MS:g} ms"
    )
    for path, seconds in timings.items():
        p50, p95 = statistics.median(seconds) * 1000, percentile(seconds, 0.95) * 1000
        verdict = "-" if path == base else ("met" if p95 < TARGET_MS else "NOT MET")
        print(
            f"{path + names.get(path, ''):<34} {p50:8.1f} {p95:8.1f} {max(seconds) * 1000:8.1f}"
            f" {p95 / (base_p95 * 1000):11.1f}x  {verdict}"
        )


# ---------------------------------------------------------------- where a page's time goes


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(
    url: str, token: str, paths: list[str], count: int, server: int, database: str
) -> dict[str, tuple[float, float]]:
    """CPU milliseconds a request costs the server process and its PostgreSQL backends, each route on its
    own: what the page would take on an idle machine, whatever else this machine is doing meanwhile."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    find = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()")

    def backends() -> dict[int, float]:
        with admin.connect() as connection:
            pids = [pid for (pid,) in connection.execute(find, {"name": database})]
        found = {}
        for pid in pids:
            try:
                found[pid] = cpu_seconds(pid)
            except OSError:
                pass  # gone meanwhile
        return found

    costs = {}
    with httpx.Client(base_url=url, timeout=60) as client:
        sign_in(client, token)
        for path in paths:
            for _ in range(3):
                client.get(path)
            server_before, database_before = cpu_seconds(server), backends()
            for _ in range(count):
                client.get(path)
            server_after, database_after = cpu_seconds(server), backends()
            spent = sum(after - database_before.get(pid, 0.0) for pid, after in database_after.items())
            costs[path] = ((server_after - server_before) / count * 1000, spent / count * 1000)
    admin.dispose()
    return costs


class Statements:
    """Counts the statements an engine runs and the seconds spent in them (execute and transfer)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.seconds = 0.0
        self.each: list[tuple[float, str]] = []
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        took = time.perf_counter() - conn.info.pop("bench_started")
        self.count += 1
        self.seconds += took
        self.each.append((took, " ".join(statement.split())[:90]))

    def reset(self) -> None:
        self.count, self.seconds, self.each = 0, 0.0, []


def breakdown(database_url: str, specs: list[Slo], runs: int) -> None:
    """The overview's and the incident list's database work, as the routes do it, in this process."""
    from sqlmodel import Session

    from app.incidents import service as incidents
    from app.web import views

    engine = db.make_engine(database_url)
    seen = Statements(engine)

    def overview(page: int) -> Callable[[], None]:
        def run() -> None:
            with Session(engine) as session:
                found = views.overview(session, specs, now=datetime.now(UTC), page=page)
                views.open_incidents(session)
            for row in found.rows:
                views.sparkline_points(row)

        return run

    def incident_list(page: int) -> Callable[[], None]:
        def run() -> None:
            with Session(engine) as session:
                incidents.count_incidents(session)
                incidents.list_incidents(session, limit=50, offset=(page - 1) * 50)

        return run

    print(f"\nThe same database work in this process (median of {runs}, session lookup not included):")
    for name, run in (
        ("/ (overview, page 1)", overview(1)),
        ("/incidents (page 1)", incident_list(1)),
        ("/incidents?page=100", incident_list(100)),
    ):
        run()
        totals, in_sql, slowest = [], [], {}
        for _ in range(runs):
            seen.reset()
            started = time.perf_counter()
            run()
            totals.append(time.perf_counter() - started)
            in_sql.append(seen.seconds)
            for took, text in seen.each:
                slowest[text] = slowest.get(text, []) + [took]
        total, sql = statistics.median(totals) * 1000, statistics.median(in_sql) * 1000
        print(
            f"  {name:<24} {total:7.1f} ms, {seen.count} statements, {sql:6.1f} ms in them, "
            f"{total - sql:6.1f} ms in Python"
        )
        for text, took in sorted(slowest.items(), key=lambda item: -statistics.median(item[1]))[:3]:
            print(f"      {statistics.median(took) * 1000:7.1f} ms  {text}")
    engine.dispose()


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slos", type=int, default=5000)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--density", type=int, default=1440, help="evaluation cycles stored a day (1440: every minute)"
    )
    parser.add_argument("--hours", type=float, default=24.0, help="hours of evaluation history")
    parser.add_argument(
        "--vacuum-lag",
        type=float,
        default=0.0,
        help="hours of the newest history left unvacuumed (not all-visible, as autovacuum lags)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="at most this long measuring")
    parser.add_argument(
        "--cpu-requests", type=int, default=30, help="requests of each route for the CPU figures"
    )
    parser.add_argument("--breakdown-runs", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "slo").mkdir()
        (folder / "sloguard.yaml").write_text("{}\n")
        write_specs(folder / "slo", args.slos, args.services)
        specs = load_specs([folder / "slo"])
        name, database_url = new_database()
        process = None
        try:
            env = environment(folder, database_url)
            sloguard(env, "db", "upgrade")
            engine = db.make_engine(database_url)
            end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
            started = time.perf_counter()
            rows, visible = seed_status(engine, specs, args.density, args.hours, end, args.vacuum_lag)
            seeded = time.perf_counter() - started
            events = seed_incidents(engine, specs, args.incidents, end)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("VACUUM ANALYZE incident, timeline_event"))
                size = connection.execute(
                    sa.text("SELECT pg_size_pretty(pg_total_relation_size('slo_status'))")
                ).one()[0]
            engine.dispose()
            print(
                f"{len(specs)} SLOs in {args.services} services; slo_status: {rows:,} rows "
                f"({args.density} cycles a day over {args.hours:g} h, {size}) copied in {seeded:.0f} s "
                f"(indexes and vacuum included), {visible:.0%} of its pages all-visible; "
                f"{args.incidents:,} incidents with {events:,} timeline events",
                flush=True,
            )
            token = sloguard(
                env, "tokens", "create", "--user", "U0BENCH", "--scope", "read", "--expires", "1d"
            ).strip()
            process, url, took = serve(env)
            print(f"sloguard serve ready (/readyz) {took:.1f} s after start; pid {process.pid}", flush=True)
            pages, middle = math.ceil(args.incidents / 50), math.ceil(len(specs) / 200)
            names = {
                "/": f" (1 of {math.ceil(len(specs) / 100)})",
                f"/?page={middle}": f" (of {math.ceil(len(specs) / 100)})",
                "/incidents": f" (1 of {pages})",
                f"/incidents?page={math.ceil(pages / 2)}": f" (of {pages})",
            }
            paths = list(names)
            paths.insert(0, "/healthz")
            before = os.getloadavg()[0]
            timings = measure(url, token, paths, args.requests, args.minutes, len(specs), args.incidents)
            print(
                f"\n{len(timings['/healthz'])} requests each, one at a time, the routes taking turns "
                f"(load average {before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs):"
            )
            report(timings, "/healthz", names)
            costs = cpu_per_request(url, token, paths, args.cpu_requests, process.pid, name)
            print(f"\nCPU per request, {args.cpu_requests} requests of each route on its own:")
            for path, (server_ms, database_ms) in costs.items():
                print(
                    f"{path + names.get(path, ''):<34} server {server_ms:6.1f} ms"
                    f" + PostgreSQL {database_ms:6.1f} ms = {server_ms + database_ms:6.1f} ms"
                )
            breakdown(database_url, specs, args.breakdown_runs)
        finally:
            stop_process(process, None)
            drop_database(name)


if __name__ == "__main__":
    main()
