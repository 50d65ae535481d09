"""`sloguard check-config`: everything `serve` would refuse, and what it would accept but cannot work,
reported at once. Exit 0 when valid, 1 with problems, 2 when a file could not be read.

What is checked: the settings (every unknown variable, every bad value); a config file that was named
(SLOGUARD_CONFIG_FILE) and is missing; every problem of sloguard.yaml; the SLO specs and the runbooks as
`serve` and `runbooks lint` read them; permission entries (rollback, promote, gate exceptions) that are not
Slack IDs or name a user group with no `groups:` entry (they would let nobody act); the Slack tokens'
kinds; a Slack setup with no channel anywhere (nothing would be posted). Every problem of each file is
reported; the checks that read two of them together (permissions and Slack against sloguard.yaml,
runbooks against the SLOs) run once those files are valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from app.config import (
    ENV_PREFIX,
    FileConfig,
    Settings,
    _describe,
    _known_variables,
    file_config_problems,
)
from app.errors import ConfigError, SpecError
from app.slo.model import Slo

USER = re.compile(r"[UW][A-Z0-9]{2,30}")
GROUP = re.compile(r"S[A-Z0-9]{2,30}")


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)  # what was found valid, for the closing line

    @property
    def exit_code(self) -> int:
        return 2 if self.unreadable else 1 if self.problems else 0


def run(environ: Mapping[str, str]) -> Report:
    report = Report()
    settings, problems = settings_problems(environ)
    report.unreadable += [
        p.removeprefix("could not read: ") for p in problems if p.startswith("could not read: ")
    ]
    report.problems += [p for p in problems if not p.startswith("could not read: ")]
    config_file = Path(environ.get(f"{ENV_PREFIX}CONFIG_FILE", "./sloguard.yaml"))
    slo_dir = Path(environ.get(f"{ENV_PREFIX}SLO_DIR", "./slo"))
    runbook_dir = Path(environ.get(f"{ENV_PREFIX}RUNBOOK_DIR", "./runbooks"))
    if settings is not None:
        config_file, slo_dir, runbook_dir = settings.config_file, settings.slo_dir, settings.runbook_dir
    config = _file_config(report, config_file, named=f"{ENV_PREFIX}CONFIG_FILE" in environ)
    slos = _slos(report, slo_dir)
    if slos is not None:
        from app.postmortems.runbooks import lint

        report.problems += lint(slos, runbook_dir)
        report.facts.append(f"{len(slos)} SLOs")
    if config is not None:
        report.problems += permission_problems(config_file, config)
        report.facts.append(f"{len(config.models)} models")
    if settings is not None and config is not None:
        report.problems += slack_problems(settings, config)
        report.problems += runtime_problems(config_file, settings, config)
    return report


def settings_problems(environ: Mapping[str, str]) -> tuple[Settings | None, list[str]]:
    """Settings from the environment, and every problem with them (all unknown variables, every field)."""
    problems = [
        f"{key}: unknown setting (typo? see README 'Settings')"
        for key in sorted(environ)
        if key.startswith(ENV_PREFIX) and key not in _known_variables()
    ]
    try:
        return Settings(), problems
    except ValidationError as exc:
        return None, problems + [_describe(error) for error in exc.errors()]
    except ConfigError as exc:  # a secret's *_FILE that cannot be read
        return None, [*problems, f"could not read: {exc}"]


def _file_config(report: Report, path: Path, *, named: bool) -> FileConfig | None:
    if not path.exists():
        if named:
            report.unreadable.append(f"{path}: SLOGUARD_CONFIG_FILE names it, and it does not exist")
            return None
        return FileConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        report.unreadable.append(f"{path}: cannot read: {exc}")
        return None
    except yaml.YAMLError as exc:
        report.unreadable.append(f"{path}: not valid YAML: {exc}")
        return None
    except RecursionError:
        report.unreadable.append(f"{path}: nested too deep to be a sloguard.yaml")
        return None
    if not isinstance(data, dict):
        report.problems.append(f"{path}: must be a mapping at the top level")
        return None
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        report.problems += file_config_problems(path, exc)
        return None


def _slos(report: Report, folder: Path) -> list[Slo] | None:
    from app.slo.spec import load_specs

    if not folder.is_dir():
        report.unreadable.append(f"{folder}: the SLO folder (SLOGUARD_SLO_DIR) does not exist")
        return None
    try:
        return list(load_specs([folder]))
    except SpecError as exc:
        report.problems += exc.problems
        return None


def permission_problems(path: Path, config: FileConfig) -> list[str]:
    """Entries that let nobody act: not a Slack user ID (U…/W…), a user group (a Slack ID S…, or a group of
    sloguard.yaml's `groups:`) or the automation identity's name; or a Slack user group that `groups:` does
    not list (sloguard checks membership without asking Slack, so it has no members)."""
    from app.identity.logic import PERSON, SLACK_GROUP

    found = []
    for model, model_config in sorted(config.models.items()):
        for name, env in sorted(model_config.environments.items()):
            lists = {"rollback": env.rollback, "promote": env.promote}
            if env.gate is not None:
                lists["gate.exceptions.by"] = env.gate.exceptions.by
            for what, entries in lists.items():
                where = f"{path}: models.{model}.environments.{name}.{what}"
                for entry in entries:
                    if entry in config.groups:
                        if not config.groups[entry]:
                            found.append(f"{where}: the group {entry} has no members in `groups:`")
                    elif SLACK_GROUP.fullmatch(entry):
                        found.append(
                            f"{where}: {entry} is a user group with no members in `groups:` "
                            f"(add `groups: {{{entry}: [U…]}}`), so it lets nobody act"
                        )
                    elif not PERSON.fullmatch(entry) and entry != config.automation.name:
                        found.append(
                            f"{where}: {entry[:60]!r} is not a Slack user ID (U…), a user group (S…, or one "
                            f"of `groups:`) or the automation identity ({config.automation.name}); find IDs "
                            "in a person's Slack profile, 'Copy member ID'"
                        )
    return found


def runtime_problems(path: Path, settings: Settings, config: FileConfig) -> list[str]:
    """What `serve` refuses at start-up from settings and sloguard.yaml together."""
    if config.outbox.worker == "process" and settings.is_sqlite:
        return [f"{path}: outbox.worker: 'process' needs PostgreSQL (SLOGUARD_DATABASE_URL is SQLite)"]
    return []


def slack_problems(settings: Settings, config: FileConfig) -> list[str]:
    if not settings.slack_enabled:
        return []
    if settings.slack_channel is None and not config.channels:
        return [
            "SLOGUARD_SLACK_CHANNEL: not set, and sloguard.yaml has no `channels:`; with Slack on, incidents "
            "would be posted nowhere (set a channel ID such as C0123ABCD)"
        ]
    return []
