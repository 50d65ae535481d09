"""Run a command from an argv template (no shell), e.g. ["kubectl", "argo", "rollouts", "undo", "{model}"]."""

from __future__ import annotations

import re
import subprocess

from app.rollback.targets import Change, TargetFailed, TargetResult

# Matched whole (fullmatch): with `$`, a value ending in a newline would pass.
SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")
PLACEHOLDER = re.compile(r"\{(model|environment|from|to|incident)\}")


def render(argv: list[str], change: Change) -> list[str]:
    """Fill the placeholders, refusing any value that is not a plain identifier."""
    values = {
        "model": change.model,
        "environment": change.environment,
        "from": change.from_version or "",
        "to": change.to_version,
        "incident": str(change.incident_id or ""),
    }
    used = {name for part in argv for name in PLACEHOLDER.findall(part)}
    for name in sorted(used):
        if not SAFE_VALUE.fullmatch(values[name]):
            raise TargetFailed(f"refused: {name} {values[name]!r} is not a plain identifier")
    return [PLACEHOLDER.sub(lambda m: values[m.group(1)], part) for part in argv]


class CommandTarget:
    kind = "command"

    def __init__(
        self, argv: list[str], *, timeout: float = 120.0, current_version: str | None = None
    ) -> None:
        self.argv, self.timeout = argv, timeout
        self._current = current_version

    def current(self) -> str | None:
        return self._current

    def candidates(self) -> list[str]:
        return []

    def set_version(self, change: Change) -> TargetResult:
        argv = render(self.argv, change)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, shell=False, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise TargetFailed(f"{argv[0]} timed out after {self.timeout:g}s", str(exc.output or "")) from exc
        except OSError as exc:
            raise TargetFailed(f"{argv[0]}: {exc.strerror}") from exc
        output = (done.stdout + done.stderr)[-10_000:]
        if done.returncode != 0:
            raise TargetFailed(f"{argv[0]} exited with {done.returncode}", output)
        return TargetResult(output, {"exit_code": done.returncode, "argv": argv})
