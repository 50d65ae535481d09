"""What this sloguard has switched on, and why not the rest: one line at start-up (`make run` says what is
off), one record in JSON logs."""

from __future__ import annotations

import os

from app.config import FileConfig, Settings, hide_url_password


def features(settings: Settings, config: FileConfig) -> list[tuple[str, bool, str]]:
    """(feature, on, why) in a fixed order; `why` says what turns an off feature on."""
    found: list[tuple[str, bool, str]] = []

    def add(name: str, on: bool, why_on: str, why_off: str) -> None:
        found.append((name, on, why_on if on else why_off))

    slack = settings.slack_enabled
    mode = "Socket Mode" if settings.slack_app_token is not None else "HTTP, POST /slack/events"
    add("slack", slack, mode, "SLOGUARD_SLACK_BOT_TOKEN not set")
    channel = settings.slack_channel is not None or bool(config.channels)
    if slack:
        add(
            "slack channel",
            channel,
            "incidents are posted",
            "no SLOGUARD_SLACK_CHANNEL or channels: nothing is posted",
        )
    add(
        "api automation token",
        settings.api_token is not None,
        "SLOGUARD_API_TOKEN",
        "SLOGUARD_API_TOKEN not set, personal tokens (sloguard tokens create) still work",
    )
    add("alertmanager webhook", settings.webhook_token is not None, "POST /webhooks/alertmanager",
        "SLOGUARD_WEBHOOK_TOKEN not set: alerts are refused")  # fmt: skip
    add("prometheus", True, hide_url_password(str(settings.prometheus_url)), "")
    add("elasticsearch", settings.elasticsearch_url is not None, "log-based SLIs and log evidence",
        "SLOGUARD_ELASTICSEARCH_URL not set")  # fmt: skip
    add(
        "mlflow",
        settings.mlflow_url is not None,
        "registry and rollback by alias",
        "SLOGUARD_MLFLOW_URL not set",
    )
    add("mlflow webhooks", settings.mlflow_webhook_secret is not None, "POST /webhooks/mlflow",
        "SLOGUARD_MLFLOW_WEBHOOK_SECRET not set")  # fmt: skip
    add("alertmanager silences", settings.alertmanager_url is not None, "planned windows are silenced",
        "SLOGUARD_ALERTMANAGER_URL not set")  # fmt: skip
    add("console sign-in", True, "personal tokens" + (", OpenID Connect" if config.console.oidc else ""), "")
    add("scheduler", settings.scheduler_enabled, "evaluations and jobs", "SLOGUARD_SCHEDULER_ENABLED=false")
    add("tracing", bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")), "OTLP",
        "OTEL_EXPORTER_OTLP_ENDPOINT not set")  # fmt: skip
    return found


def line(found: list[tuple[str, bool, str]]) -> str:
    """`slack: off (SLOGUARD_SLACK_BOT_TOKEN not set); mlflow: on (…); …`"""
    return "; ".join(f"{name}: {'on' if on else 'off'} ({why})" for name, on, why in found)


def record(found: list[tuple[str, bool, str]]) -> dict[str, str]:
    """The same as fields of one JSON log record: `feature_slack: "off: SLOGUARD_SLACK_BOT_TOKEN not set"`."""
    return {"feature_" + name.replace(" ", "_"): f"{'on' if on else 'off'}: {why}" for name, on, why in found}
