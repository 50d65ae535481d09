"""The `sloguard` command line."""

from __future__ import annotations

from typing import Annotated

import typer

from app.config import Settings, load_file_config, load_settings
from app.errors import ConfigError
from app.telemetry import configure_logging

cli = typer.Typer(
    name="sloguard",
    help="SLOs, incidents and guarded model rollback for ML services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database migrations.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")


def fail(message: str, code: int = 2) -> None:
    """One line on stderr and a non-zero exit: what a person or a supervisor reads first."""
    typer.echo(f"sloguard: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run the service: API, webhooks, Slack and the scheduler."""
    import uvicorn

    from app.main import create_app

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    try:
        application = create_app(settings)
    except ConfigError as exc:
        fail(str(exc))
        return
    uvicorn.run(application, host=host, port=port, log_config=None, proxy_headers=False)


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


@cli.command("check-config")
def check_config() -> None:
    """Validate settings and sloguard.yaml without starting anything."""
    settings = settings_or_exit()
    try:
        load_file_config(settings.config_file)
    except ConfigError as exc:
        fail(str(exc))
    typer.echo("configuration is valid")


def main() -> None:
    cli(prog_name="sloguard")


if __name__ == "__main__":  # pragma: no cover
    main()
