from __future__ import annotations

from pathlib import Path

import pytest

from app.config import load_file_config, load_settings
from app.errors import ConfigError


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///./sloguard.db"
    assert str(settings.prometheus_url) == "http://127.0.0.1:9090/"
    assert settings.eval_interval == 60.0
    assert settings.slo_dir == Path("./slo")
    assert not settings.slack_enabled


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SLOGUARD_PROMETHEUS_URL", "not a url", "SLOGUARD_PROMETHEUS_URL: Input should be a valid URL"),
        ("SLOGUARD_ELASTICSEARCH_URL", "ftp://logs", "SLOGUARD_ELASTICSEARCH_URL: URL scheme should be"),
        ("SLOGUARD_LOG_LEVEL", "verbose", "SLOGUARD_LOG_LEVEL: Input should be 'DEBUG', 'INFO'"),
        ("SLOGUARD_DATABASE_URL", "mysql://x/y", "SLOGUARD_DATABASE_URL: unsupported database 'mysql'"),
        ("SLOGUARD_DATABASE_URL", "::nope::", "SLOGUARD_DATABASE_URL: not a database URL"),
        ("SLOGUARD_EVAL_INTERVAL", "soon", "SLOGUARD_EVAL_INTERVAL: not a duration like 60s"),
        ("SLOGUARD_PROMETHEUS_ULR", "http://x", "SLOGUARD_PROMETHEUS_ULR: unknown setting"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_slack_token_without_signing_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGUARD_SLACK_BOT_TOKEN", "xoxb-1234-real-looking-token")
    with pytest.raises(ConfigError, match=r"^SLOGUARD_SLACK_SIGNING_SECRET: required when"):
        load_settings()


@pytest.mark.parametrize("value", ["changeme", "xxxxxxxx", "  "])
def test_placeholder_secrets_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SLOGUARD_API_TOKEN", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("SLOGUARD_API_TOKEN: ")
    assert value.strip() == "" or value not in message


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "webhook-token"
    secret.write_text("s3cr3t-from-a-mounted-file\n")
    monkeypatch.setenv("SLOGUARD_WEBHOOK_TOKEN_FILE", str(secret))
    settings = load_settings()
    assert settings.webhook_token is not None
    assert settings.webhook_token.get_secret_value() == "s3cr3t-from-a-mounted-file"
    assert "s3cr3t" not in repr(settings)


def test_variable_wins_over_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-the-file-0123456789")
    monkeypatch.setenv("SLOGUARD_API_TOKEN_FILE", str(secret))
    monkeypatch.setenv("SLOGUARD_API_TOKEN", "from-the-variable-0123456789")
    settings = load_settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "from-the-variable-0123456789"


def test_unreadable_secret_file_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SLOGUARD_API_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"^SLOGUARD_API_TOKEN_FILE: cannot read"):
        load_settings()


def test_postgres_url_gets_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGUARD_DATABASE_URL", "postgresql://sloguard@db:5432/sloguard")
    assert load_settings().database_url == "postgresql+psycopg://sloguard@db:5432/sloguard"


def test_durations_accept_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGUARD_EVAL_INTERVAL", "2m")
    assert load_settings().eval_interval == 120.0


def test_file_config_refuses_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "sloguard.yaml"
    path.write_text("models:\n  fraud:\n    registry_nmae: fraud-detector\n")
    with pytest.raises(ConfigError, match=r"sloguard.yaml: models.fraud.registry_nmae: Extra inputs"):
        load_file_config(path)


def test_fixed_drift_thresholds_are_refused_with_what_replaced_them(tmp_path: Path) -> None:
    path = tmp_path / "sloguard.yaml"
    path.write_text("models:\n  fraud:\n    drift:\n      psi_warn: 0.1\n      ks_alpha: 0.05\n")
    with pytest.raises(
        ConfigError, match=r"models.fraud.drift: .*ks_alpha, psi_warn: fixed drift thresholds.*`alpha`"
    ):
        load_file_config(path)


def test_missing_file_config_is_empty(tmp_path: Path) -> None:
    assert load_file_config(tmp_path / "absent.yaml").models == {}


def test_socket_mode_needs_an_app_level_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGUARD_SLACK_BOT_TOKEN", "xoxb-1234-real-looking-token")
    monkeypatch.setenv("SLOGUARD_SLACK_SIGNING_SECRET", "8f742231b10e8888abcd99yyyzzz85a5")
    monkeypatch.setenv("SLOGUARD_SLACK_APP_TOKEN", "xoxb-not-an-app-token")
    with pytest.raises(ConfigError, match=r"^SLOGUARD_SLACK_APP_TOKEN: must be an app-level token"):
        load_settings()
    monkeypatch.setenv("SLOGUARD_SLACK_APP_TOKEN", "xapp-1-A111-222-abc")
    assert load_settings().slack_app_token is not None
