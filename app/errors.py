"""Errors that sloguard raises, and what each entry point turns them into.

    SloguardError
     ├── ConfigError            bad settings or sloguard.yaml: start-up stops with one line
     ├── SpecError              an SLO file is invalid: `file: field: reason`
     ├── ServiceError           a request cannot be carried out (HTTP 4xx)
     │    ├── NotFound          404
     │    ├── Conflict          409
     │    ├── InvalidTransition 409
     │    └── Forbidden         403
     ├── SourceError            a metrics or log backend failed (HTTP 502/503; SLO state `source_error`)
     │    ├── SourceTimeout     it did not answer within the timeout (connected, or not)
     │    └── SourceUnavailable it refused, reset, or answered something unusable
     └── StorageError           the database is not the one this process started on (HTTP 503)
          └── StorageReplaced   removed, or replaced by another (e.g. re-created empty): restart needed

Sources turn library errors into these (`raise SourceUnavailable(...) from exc`); each door (HTTP
route, CLI verb, Slack listener, job) maps them once.
"""

from __future__ import annotations


class SloguardError(Exception):
    """Base of every error sloguard raises on purpose."""


class ConfigError(SloguardError):
    """A setting or a sloguard.yaml value is wrong; the message names it."""


class SpecError(SloguardError):
    """One or more SLO spec problems, each as `file: field: reason`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class ServiceError(SloguardError):
    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class InvalidTransition(ServiceError):
    status_code = 409


class Forbidden(ServiceError):
    status_code = 403


class SourceError(SloguardError):
    """A metrics or log backend did not answer usefully."""


class SourceTimeout(SourceError):
    pass


class SourceUnavailable(SourceError):
    pass


class StorageError(SloguardError):
    """The database cannot be trusted with a write: nothing was stored."""


class StorageReplaced(StorageError):
    """The database this process migrated and started on is gone or another one answers in its place.

    Never repaired silently (re-migrating an empty database would hide the loss of every incident): the
    message says where, and that sloguard needs the database restored, or a restart to begin afresh.
    """
