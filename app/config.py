"""Settings: environment variables prefixed `SLOGUARD_`, secrets also from `*_FILE`, plus sloguard.yaml.

Nothing here is read at import time: `load_settings()` is called by the CLI and the tests build their
own `Settings(...)`, so each app has exactly the configuration it was given.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app import durations
from app.errors import ConfigError
from app.gates.policy import GatePolicy
from app.identity.logic import Scope
from app.planned.windows import PlannedWindow

ENV_PREFIX = "SLOGUARD_"
SECRET_FIELDS = (
    "slack_bot_token",
    "slack_app_token",
    "slack_signing_secret",
    "webhook_token",
    "api_token",
    "elasticsearch_api_key",
    "oidc_client_secret",
    "mlflow_webhook_secret",
)
# Values people paste from examples; a service that accepts them is open to anyone who read the docs.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "password",
        "token",
        "placeholder",
        "todo",
        "xxx",
        "xoxb-your-token",
        "your-token-here",
        "xoxb-xxx",
    }
)


def parse_duration_seconds(value: object) -> float:
    """`90`, `90s`, `1.5m`, `2h` -> seconds (the grammar of every duration setting: app/durations.py)."""
    return durations.parse_setting(value)


class TargetConfig(BaseModel):
    """How versions are changed in one environment."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mlflow_alias", "http_webhook", "command"]
    alias: str | None = None  # mlflow_alias: defaults to the registry alias of the environment
    url: AnyHttpUrl | None = None  # http_webhook
    secret_env: str | None = None  # http_webhook: the environment variable holding the HMAC secret
    argv: list[str] | None = None  # command
    timeout: float = Field(default=30.0, gt=0)
    retries: int = Field(default=2, ge=0, le=5)

    @model_validator(mode="after")
    def _complete(self) -> TargetConfig:
        if self.kind == "http_webhook" and (self.url is None or not self.secret_env):
            raise ValueError("an http_webhook target needs url and secret_env")
        if self.kind == "command" and not self.argv:
            raise ValueError("a command target needs argv")
        return self


class ModelEnvironment(BaseModel):
    """One environment (dev, test, prod) a model is served in, and who may change it."""

    model_config = ConfigDict(extra="forbid")

    target: TargetConfig | None = None
    # The SLOs that belong to this environment (besides those whose `environment` label names it).
    slos: list[str] = Field(default_factory=list)
    # Label matchers of this environment's traffic, added to the model's selector (e.g. env="test").
    selector: str = ""
    gate: GatePolicy | None = None
    # Slack user IDs (U...) and user group IDs (S...) allowed to roll back / promote here.
    rollback: list[str] = Field(default_factory=list)
    promote: list[str] = Field(default_factory=list)
    require_commander: bool = False  # only the incident's commander may roll back
    two_person: bool = False  # a second allowed person must confirm
    verify_for: float = 600.0  # how long to watch the burn after a change

    @field_validator("verify_for", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration_seconds(value)


class RegistryConfig(BaseModel):
    """Where the model's versions are registered (MLflow: registered model name and alias per env)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mlflow"] = "mlflow"
    name: str
    aliases: dict[str, str] = Field(default_factory=lambda: {"prod": "champion"})


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Gauges the model server exports, e.g. ml_feature_drift_score{model,feature,method}.
    gauge_metric: str | None = "ml_feature_drift_score"
    gauge_threshold: float = 0.1
    # Computed drift: reference values (JSON {feature: [values]} or CSV with a header) against the
    # feature values logged to Elasticsearch during the incident.
    reference_file: Path | None = None
    # ... or reference values read from an index (e.g. the training set's features).
    reference_index: str | None = None
    reference_query: str | None = None
    index: str | None = None
    timestamp_field: str = "@timestamp"
    query: str | None = None
    features: list[str] = Field(default_factory=list)
    sample_size: int = Field(default=5000, ge=10, le=10000)
    # Calibrated decisions (app/ml/drift.py, docs/slo-math.md): the false-alarm rate over all features
    # compared, the fewest current values judged, and the smallest effect that counts as drift.
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_sample: int = Field(default=30, ge=2)
    min_effect: dict[str, float] = Field(default_factory=dict)  # psi, wasserstein, ks, chi2
    # Features compared as categories (string values are, always).
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, data: object) -> object:
        old = {"psi_warn", "psi_major", "ks_alpha", "wasserstein"} & set(
            data if isinstance(data, dict) else ()
        )
        if old:
            raise ValueError(
                f"{', '.join(sorted(old))}: fixed drift thresholds were replaced by thresholds calibrated on "
                "the reference at each sample size; set `alpha` and `min_effect` instead"
            )
        return data

    @field_validator("min_effect")
    @classmethod
    def _methods(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - {"psi", "wasserstein", "ks", "chi2"}
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}: use psi, wasserstein, ks or chi2")
        return value


class LogsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: str
    timestamp_field: str = "@timestamp"
    query: str = "level:error"
    signature_field: str = "error.type"
    size: int = Field(default=5, ge=1, le=50)


class ModelConfig(BaseModel):
    """A model in the ML catalogue of sloguard.yaml."""

    model_config = ConfigDict(extra="forbid")

    services: list[str] = Field(default_factory=list)
    slos: list[str] = Field(default_factory=list)
    # The label that carries the model version in metrics (serving stacks differ).
    version_label: str = "model_version"
    request_metric: str = "http_requests_total"
    selector: str = ""  # label matchers for this model's traffic, e.g. service="fraud-model"
    error_selector: str = 'code=~"5.."'
    lookback: float = 6 * 3600.0  # how long before the burn a new version counts as the suspect
    registry: RegistryConfig | None = None
    environments: dict[str, ModelEnvironment] = Field(default_factory=dict)
    drift: DriftConfig | None = None
    logs: LogsConfig | None = None

    @field_validator("lookback", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration_seconds(value)


class SloOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_events: float | None = Field(default=None, ge=0)


class SloOptions(BaseModel):
    """How SLOs are evaluated (sloguard.yaml `slo:`)."""

    model_config = ConfigDict(extra="forbid")

    # Below this many events in a tier's long window, a breach reads `insufficient_data`, not a page.
    min_events: float = Field(default=10, ge=0)
    # Log pipelines lag: Elasticsearch windows end this long before now.
    ingest_delay: float = 60.0
    # SloStatus rows older than this are deleted after each cycle.
    status_retention: float = 7 * 86400.0
    # Prometheus/Elasticsearch queries in flight at once in direct mode.
    concurrency: int = Field(default=8, ge=1, le=64)
    # Read Sloth-style recording rules when Prometheus has them (one query per window for all SLOs).
    batch: bool = True
    overrides: dict[str, SloOverride] = Field(default_factory=dict)

    @field_validator("ingest_delay", "status_retention", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration_seconds(value)

    def min_events_for(self, slo_id: str) -> float:
        override = self.overrides.get(slo_id)
        if override is not None and override.min_events is not None:
            return override.min_events
        return self.min_events


SeverityName = Literal["SEV1", "SEV2", "SEV3", "SEV4"]
DEFAULT_SEVERITIES: dict[str, SeverityName] = {
    "critical": "SEV2",
    "page": "SEV2",
    "error": "SEV3",
    "warning": "SEV3",
    "ticket": "SEV3",
    "info": "SEV4",
}


class IncidentOptions(BaseModel):
    """How incidents are opened and followed (sloguard.yaml `incidents:`)."""

    model_config = ConfigDict(extra="forbid")

    # Label values (severity, sloth_severity) and SLO tiers -> SEV1..SEV4.
    severity: dict[str, SeverityName] = Field(default_factory=lambda: dict(DEFAULT_SEVERITIES))
    budget_exhausted_severity: SeverityName = "SEV1"
    default_severity: SeverityName = "SEV4"
    # An incident still `triggered` after this long is announced again (and again every period).
    renotify_after: float = 15 * 60.0
    # A `mitigated` incident with no new alert for this long is resolved automatically; 0 = never.
    auto_resolve_after: float = 0.0
    webhook_max_bytes: int = Field(default=1024 * 1024, ge=1024)

    @field_validator("renotify_after", "auto_resolve_after", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        if value in (0, "0", None):
            return 0.0
        return parse_duration_seconds(value)


class SlackOptions(BaseModel):
    """How sloguard behaves in Slack (sloguard.yaml `slack:`)."""

    model_config = ConfigDict(extra="forbid")

    # Open a channel per incident (inc-<id>-<slug>), invite the commander and these responders.
    incident_channels: bool = False
    responders: list[str] = Field(default_factory=list)
    # Channel id -> user group id mentioned when an incident there stays unacknowledged.
    oncall_groups: dict[str, str] = Field(default_factory=dict)


class OutboxOptions(BaseModel):
    """sloguard.yaml `outbox:` (seconds)."""

    model_config = ConfigDict(extra="forbid")

    dead_after: float = Field(default=24 * 3600.0, gt=0)  # a row still undelivered then is dead
    keep_delivered: float = Field(default=7 * 24 * 3600.0, ge=0)  # then delivered rows are pruned
    chat_backoff_cap: float = Field(default=10.0, gt=0)
    work_backoff_cap: float = Field(default=300.0, gt=0)
    lease: float = Field(default=60.0, gt=0)  # a claim older than this is taken over
    poll_interval: float = Field(default=1.0, gt=0)  # how often other replicas' rows are looked for
    chat_workers: int = Field(default=2, ge=1, le=16)
    work_workers: int = Field(default=2, ge=1, le=16)
    # Where `serve` runs the deliveries: `process` (a child process, PostgreSQL only), `thread` (the
    # server's own process), `auto` (process on PostgreSQL, thread on SQLite).
    worker: Literal["auto", "thread", "process"] = "auto"


# The actors sloguard's own rows carry, and the CLI's name in the token records: never an automation's.
RESERVED_NAMES = frozenset({"sloguard", "slo-engine", "alertmanager", "cli"})


class AutomationConfig(BaseModel):
    """Who SLOGUARD_API_TOKEN acts as: a name (lower case, never a Slack ID) and the most it may reach."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="automation", pattern=r"^[a-z][a-z0-9_.-]{0,62}$")
    # `admin` would let one shared secret make tokens in anyone's name: people get it, automation never.
    scope: Literal[Scope.read, Scope.respond, Scope.change] = Scope.read

    @field_validator("name")
    @classmethod
    def _not_sloguard(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} names a part of sloguard; choose another (such as ci)")
        return value


class OidcOptions(BaseModel):
    """sloguard.yaml `console.oidc:`: sign-in through an OpenID Connect provider (the client secret is
    SLOGUARD_OIDC_CLIENT_SECRET). The person is named by a claim: its value mapped to a Slack user ID in
    `people`, or, with `people` empty, the claim's value itself when it is a Slack user ID. Someone the
    mapping does not name may read, never act."""

    model_config = ConfigDict(extra="forbid")

    issuer: AnyHttpUrl  # its /.well-known/openid-configuration is read at sign-in
    client_id: str = Field(min_length=1, max_length=200)
    label: str = Field(default="Sign in with single sign-on", min_length=1, max_length=80)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    claim: str = Field(default="email", min_length=1, max_length=100)
    people: dict[str, str] = Field(default_factory=dict)  # claim value -> Slack user ID
    groups_claim: str = Field(default="groups", min_length=1, max_length=100)
    group_scopes: dict[str, Scope] = Field(default_factory=dict)  # a group in the claim -> its scope
    default_scope: Scope = Scope.read  # a mapped person in none of the listed groups

    @field_validator("people")
    @classmethod
    def _slack_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for claim, user in value.items():
            if re.fullmatch(r"[UW][A-Z0-9]{1,30}", user) is None:
                raise ValueError(f"{claim[:60]!r}: {user[:40]!r} is not a Slack user ID (such as U0ALICE)")
        return value

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include openid")
        return value


class ConsoleOptions(BaseModel):
    """sloguard.yaml `console:` (the web console at /)."""

    model_config = ConfigDict(extra="forbid")

    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)  # a sign-in lasts this long at most
    oidc: OidcOptions | None = None


class FileConfig(BaseModel):
    """What sloguard.yaml holds: everything that is not a secret and is more than one value."""

    model_config = ConfigDict(extra="forbid")

    slo: SloOptions = Field(default_factory=SloOptions)
    incidents: IncidentOptions = Field(default_factory=IncidentOptions)
    slack: SlackOptions = Field(default_factory=SlackOptions)
    # Slack user group ID -> member user IDs, for permission checks without a Slack round trip.
    groups: dict[str, list[str]] = Field(default_factory=dict)
    # Seconds one incident's evidence gathering may take before what is missing is noted instead.
    enrich_timeout: float = 30.0
    channels: dict[str, str] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    outbox: OutboxOptions = Field(default_factory=OutboxOptions)
    automation: AutomationConfig = Field(default_factory=AutomationConfig)
    console: ConsoleOptions = Field(default_factory=ConsoleOptions)
    # Maintenance announced ahead (app/planned): the SLOs it covers neither page nor spend budget.
    planned_windows: list[PlannedWindow] = Field(default_factory=list, max_length=500)

    @field_validator("planned_windows")
    @classmethod
    def _unique_windows(cls, value: list[PlannedWindow]) -> list[PlannedWindow]:
        names = [window.name for window in value]
        if twice := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"two windows are named {', '.join(twice)}: each name is one window")
        return value


class _SecretFileSource(PydanticBaseSettingsSource):
    """Reads `SLOGUARD_<SECRET>_FILE`: the secret is the file's content, trailing newline stripped."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            variable = f"{ENV_PREFIX}{name.upper()}_FILE"
            path = self._environ.get(variable)
            if not path:
                continue
            try:
                found[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] | None = None  # unset: text on a terminal, JSON otherwise

    database_url: str = "sqlite:///./sloguard.db"

    prometheus_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:9090")
    prometheus_tenant: str | None = None
    source_timeout: float = Field(default=10.0, gt=0)
    elasticsearch_url: AnyHttpUrl | None = None
    elasticsearch_api_key: SecretStr | None = None
    mlflow_url: AnyHttpUrl | None = None

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")
    slack_channel: str | None = None
    # An app-level token (xapp-...) turns on Socket Mode: no public URL needed.
    slack_app_token: SecretStr | None = None
    # Where people reach this service (links in Slack messages to the full API view).
    public_url: AnyHttpUrl | None = None

    webhook_token: SecretStr | None = None
    # The secret MLflow's registry webhook signs its deliveries with (POST /webhooks/mlflow).
    mlflow_webhook_secret: SecretStr | None = None
    # Alertmanager's API (v2): sloguard silences the SLOs a planned window covers before it starts.
    alertmanager_url: AnyHttpUrl | None = None
    api_token: SecretStr | None = None
    # The console's OpenID Connect client secret (sloguard.yaml `console.oidc` names the provider).
    oidc_client_secret: SecretStr | None = None
    # Proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client: the address
    # failed token attempts are counted against. Unset: the connection's own address.
    trusted_proxies: str = ""

    slo_dir: Path = Path("./slo")
    runbook_dir: Path = Path("./runbooks")
    postmortem_dir: Path = Path("./postmortems")
    config_file: Path = Path("./sloguard.yaml")

    eval_interval: float = 60.0
    scheduler_enabled: bool = True
    # PostgreSQL: how soon another replica takes the scheduler over when the leader dies.
    leader_takeover: float = Field(default=15.0, ge=1)

    @field_validator("eval_interval", "leader_takeover", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration_seconds(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry)  # strict, as uvicorn reads it: 10.1.2.3/8 would be ignored there
            except ValueError:
                raise ValueError(
                    f"not an address or network: {entry[:60]!r} (such as 10.1.2.3 or 10.1.0.0/16)"
                ) from None
        return ",".join(entries)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            # SQLAlchemy's message may quote the URL, password and all: say what is wrong, not what it read.
            raise ValueError(
                "not a database URL: expected sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite or postgresql")
        if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
            # psycopg (3) is the driver we ship; SQLAlchemy would otherwise look for psycopg2.
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    @field_validator(*SECRET_FIELDS)
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if not raw.strip():
            raise ValueError("is set but empty")
        if raw.strip().lower() in PLACEHOLDER_SECRETS or len(set(raw)) == 1:
            raise ValueError("is a placeholder value; set a real secret")
        return value

    @model_validator(mode="after")
    def _features_have_their_secrets(self) -> Settings:
        """Every problem of the Slack settings together (one per line), token kinds first."""
        bot = self.slack_bot_token.get_secret_value() if self.slack_bot_token else None
        app = self.slack_app_token.get_secret_value() if self.slack_app_token else None
        problems = []
        if bot is not None and not bot.startswith("xoxb-"):
            kind = "an app-level token (xapp-)" if bot.startswith("xapp-") else "not a bot token"
            problems.append(
                f"SLOGUARD_SLACK_BOT_TOKEN: must be a bot token starting with xoxb- (this is {kind})"
            )
        if app is not None and not app.startswith("xapp-"):
            problems.append("SLOGUARD_SLACK_APP_TOKEN: must be an app-level token starting with xapp-")
        if bot is not None and self.slack_signing_secret is None and app is None:
            problems.append(
                "SLOGUARD_SLACK_SIGNING_SECRET: required when SLOGUARD_SLACK_BOT_TOKEN is set without "
                "SLOGUARD_SLACK_APP_TOKEN (Slack's HTTP requests cannot be verified without it; Socket "
                "Mode needs none)"
            )
        if bot is None and app is not None:
            problems.append("SLOGUARD_SLACK_BOT_TOKEN: required when SLOGUARD_SLACK_APP_TOKEN is set")
        if bot is None and self.slack_signing_secret is not None:
            problems.append("SLOGUARD_SLACK_BOT_TOKEN: required when SLOGUARD_SLACK_SIGNING_SECRET is set")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values win, then the variable itself, then its *_FILE twin.
        return (init_settings, env_settings, _SecretFileSource(settings_cls, os.environ))


def _known_variables() -> set[str]:
    names = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    names |= {f"{ENV_PREFIX}{name.upper()}_FILE" for name in SECRET_FIELDS}
    return names


def hide_url_password(url: str) -> str:
    """`scheme://user:password@host` -> `scheme://user:***@host`, also in URLs too broken to parse: whatever
    stands between the user's colon and the last `@` is hidden, scheme or no scheme, spaces or not."""
    userinfo, at, rest = url.rpartition("@")
    if not at:
        return url
    _, slashes, authority = userinfo.partition("://")  # the scheme's, not one inside the password
    prefix = userinfo[: len(userinfo) - len(authority)] if slashes else ""
    user, colon, _password = (authority if slashes else userinfo).partition(":")
    if not colon:
        return url
    return f"{prefix}{user}:***@{rest}"


def _describe(error: Mapping[str, Any]) -> str:
    location = error.get("loc") or ()
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if not location:
        return message  # model-level checks already name their variables
    name = f"{ENV_PREFIX}{str(location[0]).upper()}"
    got = error.get("input")
    if isinstance(got, str) and location[0] == "database_url":
        got = hide_url_password(got)  # the URL is worth showing; its password is not
    shown = "" if location[0] in SECRET_FIELDS or isinstance(got, dict) else f" (got {got!r})"
    return f"{name}: {message}{shown}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from the environment; any problem becomes one ConfigError line."""
    environ = os.environ if environ is None else environ
    unknown = sorted(key for key in environ if key.startswith(ENV_PREFIX) and key not in _known_variables())
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown setting (typo? see README 'Settings')")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error) for error in exc.errors())) from None


def load_file_config(path: Path) -> FileConfig:
    """Read sloguard.yaml; a missing file is an empty configuration."""
    if not path.exists():
        return FileConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep to be a sloguard.yaml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping at the top level")
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(file_config_problems(path, exc))) from None


def file_config_problems(path: Path, error: ValidationError) -> list[str]:
    """Every problem of sloguard.yaml, one `file: field: reason` line each."""
    lines = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{path}: {field}: {str(problem['msg']).removeprefix('Value error, ')}")
    return lines
