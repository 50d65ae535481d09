"""The `sloguard` command line."""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel

from app.config import Settings, load_file_config, load_settings
from app.errors import ConfigError, SpecError
from app.inputs import MAX_ROW_ID, clamp_to_utc
from app.slo import rules
from app.slo.model import Slo
from app.slo.spec import load_specs
from app.telemetry import configure_logging

log = logging.getLogger(__name__)

cli = typer.Typer(
    name="sloguard",
    help="SLOs, incidents and guarded model rollback for ML services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# `--at` leaves room for a year-long window before it and stays inside what datetime can represent.
AT_EARLIEST, AT_LATEST = datetime(1971, 1, 1, tzinfo=UTC), datetime(9998, 12, 31, tzinfo=UTC)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
slo_cli = typer.Typer(help="SLO specs: lint, Prometheus rules, live status.", no_args_is_help=True)
cli.add_typer(slo_cli, name="slo")


def _json_lines(rows: Sequence[BaseModel]) -> None:
    """`--json`: one JSON object per row, as the API answers it."""
    for row in rows:
        typer.echo(json.dumps(row.model_dump(mode="json"), ensure_ascii=False))


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and a non-zero exit: what a person or a supervisor reads first."""
    typer.echo(f"sloguard: {message}", err=True)
    raise typer.Exit(code)


def fail_spec(exc: SpecError) -> NoReturn:
    for line in exc.problems:
        typer.echo(line, err=True)
    raise typer.Exit(1)


def load_slos(paths: list[Path] | None, settings: Settings | None = None) -> list[Slo]:
    chosen = paths or [(settings or settings_or_exit()).slo_dir]
    try:
        return load_specs(chosen)
    except SpecError as exc:
        fail_spec(exc)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run the service: the web console, API, webhooks, Slack and the scheduler."""
    import uvicorn

    from app.main import create_app

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        application = create_app(settings, own_processes=True)
    except ConfigError as exc:
        fail(str(exc))
        return
    except SpecError as exc:
        fail_spec(exc)
        return
    proxies = settings.trusted_proxies
    shown = str(settings.public_url).rstrip("/") if settings.public_url else f"http://{host}:{port}"
    log.info(
        "web console at %s/ (sign in with a token: sloguard tokens create --user U… --scope respond)",
        shown,
    )
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (start-up applies them too)."""
    from app import db

    settings = settings_or_exit()
    configure_logging(settings.log_level, "text")
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    typer.echo("database is at the latest revision")


def _gate_command() -> None:
    from app.gates.cli import gate

    cli.command("gate")(gate)


_gate_command()


def _changes_command() -> None:
    from app.changes.cli import changes

    cli.command("changes")(changes)


_changes_command()


def _grafana_command() -> None:
    from app.grafana.cli import grafana

    cli.add_typer(grafana, name="grafana")


_grafana_command()


@cli.command("check-config")
def check_config() -> None:
    """Check everything `serve` would refuse, and more, at once: the settings, sloguard.yaml, the SLO specs,
    the runbooks, permissions that let nobody act, Slack tokens and channels. Exit 0 valid, 1 problems,
    2 a file could not be read."""
    import os

    from app import checks

    report = checks.run(os.environ)
    for line in report.unreadable + report.problems:
        typer.echo(line, err=True)
    if report.exit_code:
        count = len(report.unreadable) + len(report.problems)
        typer.echo(f"sloguard: {count} problem{'s' if count != 1 else ''}", err=True)
        raise typer.Exit(report.exit_code)
    typer.echo(f"configuration is valid ({', '.join(report.facts)})")


@cli.command("postmortem")
def postmortem(
    incident_id: Annotated[int, typer.Argument(help="The incident number.", min=1, max=MAX_ROW_ID)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
) -> None:
    """Write the review draft for an incident (into SLOGUARD_POSTMORTEM_DIR unless -o)."""
    from app.errors import NotFound
    from app.postmortems import service as postmortems
    from app.services import build_services

    settings = settings_or_exit()
    configure_logging("WARNING", "text")
    try:
        file_config = load_file_config(settings.config_file)
    except ConfigError as exc:
        fail(str(exc))
    services = build_services(settings, file_config, load_slos(None, settings))  # the ones `serve` builds
    try:
        draft = postmortems.write(services, incident_id, datetime.now(UTC), output)
    except NotFound as exc:
        fail(str(exc), code=1)
    finally:
        services.close()
    typer.echo(f"wrote {draft.path}")


outbox_cli = typer.Typer(
    help="Effects waiting to be delivered (Slack calls, evidence, drafts, verification).",
    no_args_is_help=True,
)
cli.add_typer(outbox_cli, name="outbox")


def _database() -> Any:
    """The database `serve` uses, migrated (the outbox and token tables come with migrations)."""
    from app import db

    settings = settings_or_exit()
    configure_logging("WARNING", "text")
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
    except Exception as exc:
        engine.dispose()
        fail(f"cannot open the database at {db.describe_database(engine.url)}: {type(exc).__name__}", code=1)
    return engine


@outbox_cli.command("worker", hidden=True)
def outbox_worker(
    parent_pid: Annotated[int | None, typer.Option(help="Stop when this process is gone.")] = None,
    report_fd: Annotated[int | None, typer.Option(help="Report deliveries on this pipe.")] = None,
    wake_fd: Annotated[int | None, typer.Option(help="Wake up when this pipe says so.")] = None,
    replica: Annotated[str, typer.Option(help="The replica this worker delivers for.")] = "",
) -> None:
    """Deliver the outbox and nothing else: `serve` runs this as its child process on PostgreSQL."""
    from app.outbox.process import run_child

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        run_child(settings, parent_pid=parent_pid, report_fd=report_fd, replica=replica, wake_fd=wake_fd)
    except ConfigError as exc:
        fail(str(exc))
    except SpecError as exc:
        fail_spec(exc)


@outbox_cli.command("list")
def outbox_list(
    dead: Annotated[bool, typer.Option("--dead", help="Only rows given up on.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many rows, oldest first.", min=1)] = 200,
) -> None:
    """Rows not yet delivered (pending and dead), oldest first, with their last error."""
    from sqlmodel import Session

    from app import outbox

    engine = _database()
    try:
        with Session(engine) as session:
            found = outbox.rows(session, dead_only=dead, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        _json_lines(found)
        return
    if not found:
        typer.echo("no dead rows" if dead else "the outbox is empty: everything was delivered")
        return
    typer.echo(
        f"{'id':>6}  {'state':<7}  {'kind':<17}  {'incident':>8}  {'tries':>5}  {'since':<20}  last error"
    )
    for row in found:
        since = f"{row.since:%Y-%m-%d %H:%M:%S}"
        error = (row.last_error or "-").replace("\n", " ")[:80]
        incident = str(row.incident_id) if row.incident_id is not None else "-"
        columns = f"{row.id:>6}  {row.state:<7}  {row.kind:<17}  {incident:>8}  {row.attempts:>5}"
        typer.echo(f"{columns}  {since:<20}  {error}")


@outbox_cli.command("retry")
def outbox_retry(
    row_id: Annotated[int | None, typer.Argument(help="A dead row's id.", min=1, max=MAX_ROW_ID)] = None,
    all_dead: Annotated[bool, typer.Option("--all-dead", help="Every dead row.")] = False,
) -> None:
    """Deliver a dead row again (its delivery starts over now); a running `serve` picks it up."""
    from app import outbox

    if (row_id is None) == (not all_dead):
        fail("give a row id or --all-dead (not both)")
    engine = _database()
    try:
        revived = outbox.retry(engine, row_id=row_id, all_dead=all_dead)
    finally:
        engine.dispose()
    if not revived:
        fail(
            f"outbox row {row_id} is not dead (see `sloguard outbox list --dead`)"
            if row_id
            else "no dead rows",
            1,
        )
    typer.echo(f"will deliver again: {', '.join(str(i) for i in revived)}")


tokens_cli = typer.Typer(
    help="Personal API tokens: each acts as its owner, within its scope.", no_args_is_help=True
)
cli.add_typer(tokens_cli, name="tokens")


@tokens_cli.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="The owner: a Slack user ID such as U0ANA.")],
    scope: Annotated[str, typer.Option(help="read, respond, change or admin (README: Tokens and scopes).")],
    expires: Annotated[str, typer.Option(help="A lifetime such as 30d, or `never`.")] = "90d",
    name: Annotated[str, typer.Option(help="A label for it, such as laptop.")] = "",
) -> None:
    """Make a token and print it, once: only its hash is kept."""
    from app.identity import service as identity

    try:
        identity.check_request(user, scope, name)  # a mistake is told before any database is opened
        identity.lifetime(expires)
    except identity.InvalidToken as exc:
        fail(str(exc))
    engine = _database()
    try:
        row, token = identity.create(
            engine,
            user=user,
            scope=scope,
            name=name,
            expires=expires,
            created_by="cli",
            now=datetime.now(UTC),
        )
    except identity.InvalidToken as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    until = f"{row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "never"
    typer.echo(f"token {row.id} for {row.user} ({row.scope}), expires {until}; it is shown once:", err=True)
    typer.echo(token)


@tokens_cli.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option(help="Only this owner's tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per token.")] = False,
) -> None:
    """Every token (never the token itself): owner, scope, state, expiry and last use."""
    from sqlmodel import Session

    from app.identity import service as identity

    engine = _database()
    now = datetime.now(UTC)
    try:
        with Session(engine) as session:
            found = [identity.read(row, now) for row in identity.tokens(session, user=user)]
    finally:
        engine.dispose()
    if as_json:
        _json_lines(found)
        return
    if not found:
        typer.echo("no tokens: make one with `sloguard tokens create --user U… --scope read`")
        return

    def when(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"

    typer.echo(
        f"{'id':>5}  {'user':<12}  {'scope':<7}  {'state':<7}  {'expires':<16}  {'last used':<16}  "
        f"{'token':<19}  name"
    )
    for item in found:
        typer.echo(
            f"{item.id:>5}  {item.user:<12}  {item.scope:<7}  {item.state:<7}  {when(item.expires_at):<16}  "
            f"{when(item.last_used_at):<16}  {item.hint:<19}  {item.name}"
        )


@tokens_cli.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (`tokens list`).", min=1, max=MAX_ROW_ID)],
) -> None:
    """Revoke a token: refused at once by every replica."""
    from app.errors import NotFound
    from app.identity import service as identity

    engine = _database()
    try:
        row = identity.revoke(engine, token_id, "cli", datetime.now(UTC))
    except NotFound as exc:
        fail(str(exc), 1)
    finally:
        engine.dispose()
    typer.echo(f"token {row.id} of {row.user} revoked at {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


runbooks_cli = typer.Typer(help="Runbooks in SLOGUARD_RUNBOOK_DIR.", no_args_is_help=True)
cli.add_typer(runbooks_cli, name="runbooks")


@runbooks_cli.command("lint")
def runbooks_lint() -> None:
    """Every SLO and generated alert names a runbook that exists; runbooks name SLOs that exist."""
    from app.postmortems.runbooks import lint

    settings = settings_or_exit()
    problems = lint(load_slos(None, settings), settings.runbook_dir)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("runbooks OK")


PathsArgument = Annotated[
    list[Path] | None, typer.Argument(help="Spec files or folders (default: SLOGUARD_SLO_DIR).")
]


@slo_cli.command("lint")
def slo_lint(paths: PathsArgument = None) -> None:
    """Validate SLO spec files; exit 1 with `file: field: reason` lines."""
    found = load_slos(paths)
    typer.echo(f"{len(found)} SLOs OK")


@slo_cli.command("rules")
def slo_rules(
    paths: PathsArgument = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="`rules`: a Prometheus rules file; `prometheusrule`: a Prometheus Operator PrometheusRule.",
        ),
    ] = "rules",
    runbook_base_url: Annotated[
        str | None,
        typer.Option(
            help="Make relative runbook_url annotations absolute against this URL (where runbooks/ is "
            "browsed); else against SLOGUARD_PUBLIC_URL's /runbooks/ when that is set."
        ),
    ] = None,
) -> None:
    """Prometheus recording and MWMB alerting rules, with Sloth's names and labels."""
    formats: dict[str, rules.Format] = {"rules": "rules", "prometheusrule": "prometheusrule"}
    if output_format not in formats:
        fail(f"--format: {output_format[:40]!r} is not rules or prometheusrule")
    scheme = urllib.parse.urlsplit(runbook_base_url or "").scheme
    if runbook_base_url is not None and scheme not in ("http", "https"):
        fail(f"--runbook-base-url: not an http(s) URL (got {runbook_base_url[:100]!r})")
    # Settings are read when they are needed: for the SLO folder, or for the public URL's runbook links.
    settings = settings_or_exit() if paths is None or "SLOGUARD_PUBLIC_URL" in os.environ else None
    public_url = str(settings.public_url) if settings is not None and settings.public_url else None
    slos = load_slos(paths, settings)
    link = rules.runbook_links(base_url=runbook_base_url, public_url=public_url)
    text = rules.render(slos, output_format=formats[output_format], runbook_link=link)
    for slo in rules.evaluated_by_sloguard_only(slos):
        typer.echo(f"sloguard: left out: {rules.left_out_note(slo)}", err=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def budget_cell(item: dict[str, Any]) -> str:
    """`33.9%`; `33.9% partial (6h of 1d)` when the data does not reach back over the whole period."""
    from app.slo.coverage import partial_note

    remaining = item["budget_remaining"]
    return "-" if remaining is None else f"{remaining * 100:.1f}%{partial_note(item.get('budget'))}"


def status_table(results: list[dict[str, Any]], tiers: dict[str, list[Any]]) -> str:
    """One row per SLO; its tiers' windows in columns by tier position (each tier's short, then long
    window), each cell `1m 30.0×`: the SLO's own windows, whatever its period."""
    positions = max((len(found) for found in tiers.values()), default=0)
    names = []
    for index in range(positions):
        named = next(
            (found[index].name for found in tiers.values() if len(found) > index), f"tier {index + 1}"
        )
        names += [f"{named} short", f"{named} long"]
    header = ["SLO", "objective", *names, "budget left", "state"]
    rows = [header]
    for item in results:
        own = tiers.get(item["id"], [])
        cells = []
        for index in range(positions):
            for window in (own[index].short, own[index].long) if index < len(own) else (None, None):
                burn = item["windows"].get(window.name, {}).get("burn_rate") if window else None
                cells.append(
                    "-"
                    if window is None
                    else f"{window.name} {_cell(burn, '.1f')}{'' if burn is None else '×'}"
                )
        rows.append(
            [
                item["id"],
                f"{item['objective'] * 100:g}%",
                *cells,
                budget_cell(item),
                item["state"] + (f" ({item['detail']})" if item.get("detail") else ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


FAIL_STATES = ("page", "ticket", "source_error", "no_data")


@slo_cli.command("status")
def slo_status(
    at: Annotated[
        str | None, typer.Option("--at", help="Evaluate every window as ending at this RFC 3339 time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when any SLO is in one of these states (comma-separated: "
            + ", ".join(FAIL_STATES)
            + ").",
        ),
    ] = None,
) -> None:
    """Evaluate every SLO once against its sources and print the result."""
    failing = {state.strip() for state in (fail_on or "").split(",") if state.strip()}
    unknown = sorted(failing - set(FAIL_STATES))
    if unknown:
        fail(f"--fail-on: {', '.join(unknown)} is not a state; use {', '.join(FAIL_STATES)}")
    from app.services import Sources, slo_engine_for

    settings = settings_or_exit()
    configure_logging("WARNING", "text")
    moment = datetime.now(UTC)
    if at is not None:
        try:
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--at: not an RFC 3339 time like 2026-11-25T10:00:00Z (got {at!r})")
        if moment.tzinfo is None:
            fail(f"--at: needs a time zone, e.g. 2026-11-25T10:00:00Z (got {at!r})")
        moment = clamp_to_utc(moment)
        if not AT_EARLIEST <= moment <= AT_LATEST:
            fail(f"--at: must lie between {AT_EARLIEST:%Y} and {AT_LATEST:%Y} (got {at!r})")
    try:
        file_config = load_file_config(settings.config_file)
    except ConfigError as exc:
        fail(str(exc))
        return
    specs = load_slos(None, settings)
    # The sources and SLO engine `serve` builds; no database: status only evaluates and prints.
    sources = Sources.from_settings(settings)
    try:
        engine = slo_engine_for(settings, file_config, specs, sources)
        results = [result.as_dict() for result in engine.evaluate(moment, remember=False)]
    finally:
        sources.close()
    if as_json:
        typer.echo(json.dumps(results, indent=2))
    else:
        typer.echo(status_table(results, {slo.id: list(slo.tiers) for slo in specs}))
    hit = sorted({item["id"] for item in results if item["state"] in failing})
    if hit:
        typer.echo(f"{len(hit)} SLO(s) in {', '.join(sorted(failing))}: {', '.join(hit)}", err=True)
        raise typer.Exit(1)


@cli.command()
def demo(
    output: Annotated[
        Path, typer.Option(help="Where the review draft and its charts are written (kept afterwards).")
    ] = Path("demo-output"),
    registry: Annotated[
        str,
        typer.Option(help="Rollback target: auto (MLflow if installed, else a webhook), mlflow or webhook."),
    ] = "auto",
) -> None:
    """The whole story on this machine: burn, incident, Slack, rollback, recovery, review draft."""
    from app.demo.run import DemoFailed, run_demo
    from app.demo.stack import MissingBinary

    if registry not in ("auto", "mlflow", "webhook"):
        fail(f"--registry: must be auto, mlflow or webhook (got {registry!r})")
    try:
        run_demo(output, registry)
    except (MissingBinary, DemoFailed) as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        typer.echo("sloguard demo: stopped; everything it started is stopped", err=True)
        raise typer.Exit(130) from None


def _planned_command() -> None:
    from app.planned.cli import planned

    cli.command("planned")(planned)


_planned_command()


def main() -> None:
    cli(prog_name="sloguard")


if __name__ == "__main__":  # pragma: no cover
    main()
