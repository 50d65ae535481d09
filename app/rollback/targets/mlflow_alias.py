"""The MLflow registry alias for an environment (e.g. `champion` for prod)."""

from __future__ import annotations

from app.errors import NotFound, SourceError
from app.rollback.targets import Change, StaleVersion, TargetFailed, TargetResult
from app.sources.mlflow import MlflowRegistry


class MlflowAliasTarget:
    kind = "mlflow_alias"

    def __init__(self, registry: MlflowRegistry, registered_model: str, alias: str) -> None:
        self.registry, self.registered_model, self.alias = registry, registered_model, alias

    def current(self) -> str | None:
        try:
            return self.registry.alias_version(self.registered_model, self.alias)
        except NotFound:
            return None

    def candidates(self) -> list[str]:
        try:
            return self.registry.versions(self.registered_model)
        except (SourceError, NotFound):
            return []

    def set_version(self, change: Change) -> TargetResult:
        try:
            serving = self.current()
            if change.from_version is not None and serving != change.from_version:
                raise StaleVersion(
                    f"alias {self.alias} of {self.registered_model} now points at {serving}, "
                    f"not {change.from_version}: refresh and propose again"
                )
            self.registry.set_alias(self.registered_model, self.alias, change.to_version)
        except (SourceError, NotFound) as exc:
            raise TargetFailed(f"MLflow: {exc}") from exc
        output = f"alias {self.alias} of {self.registered_model}: {serving} -> {change.to_version}"
        reason = f"{change.reason} (by {change.actor}" + (
            f", incident {change.incident_id})" if change.incident_id else ")"
        )
        try:
            self.registry.set_version_tag(self.registered_model, change.to_version, "sloguard.change", reason)
        except (SourceError, NotFound) as exc:
            # The alias moved: the change happened. A missing tag is worth saying, not a failure.
            output += f"\nwarning: could not tag version {change.to_version}: {exc}"
        return TargetResult(output, {"alias": self.alias, "registered_model": self.registered_model})
