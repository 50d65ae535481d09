"""Release gates: whether a model version may move into an environment, from plain facts. Pure.

The decision is `allowed`, `blocked` or `undecided` (exit codes 0, 1 and 2 of `sloguard gate`): any
blocking reason blocks; otherwise anything that could not be judged leaves it undecided, because missing
data is never "allowed". A rollback (a version that served in the environment before) is never blocked,
and an exception granted by a named person lets a blocked release through; both say so in the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from app.gates.policy import GatePolicy


class Verdict(StrEnum):
    allowed = "allowed"
    blocked = "blocked"
    undecided = "undecided"

    @property
    def exit_code(self) -> int:
        return {Verdict.allowed: 0, Verdict.blocked: 1, Verdict.undecided: 2}[self]


@dataclass(frozen=True)
class Reason:
    check: str  # budget, incident, soak, quality, rollback, exception, data
    verdict: Verdict
    text: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    slo_id: str
    remaining: float | None  # None: not known (no data, a source down, not evaluated yet)
    detail: str = ""


@dataclass(frozen=True)
class Soak:
    """What the environment below saw of the candidate: None fields could not be read."""

    environment: str
    served_seconds: float | None
    bad: float | None
    total: float | None
    allowed_ratio: float
    version_label: bool = True  # False: the metrics carry no version label, so nothing can be told apart
    problem: str | None = None  # why it could not be read (a source down)
    quality: tuple[str, float | None, float] | None = None  # (SLO, its error ratio over the soak, allowed)


@dataclass(frozen=True)
class Facts:
    model: str
    version: str
    environment: str
    current: str | None  # the version serving there now, if known
    served_before: bool  # the version served in the environment before: a rollback
    budgets: Sequence[Budget] = ()
    page_incidents: Sequence[int] = ()
    soak: Soak | None = None
    exception: tuple[str, str] | None = None  # (who granted it, why)
    frozen: bool | None = None  # the freeze state held (hysteresis); None: judge by `freeze_below` alone


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[Reason, ...]

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.verdict.value,
            "exit_code": self.exit_code,
            "reasons": [asdict(reason) | {"verdict": reason.verdict.value} for reason in self.reasons],
        }


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _span(seconds: float) -> str:
    if seconds >= 86400 and seconds % 3600 == 0 and seconds >= 2 * 86400:
        return f"{seconds / 86400:g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 60:.0f} min"


def budget_reasons(facts: Facts, policy: GatePolicy) -> list[Reason]:
    if policy.freeze_below is None:
        return []
    reasons = []
    env = facts.environment
    if not facts.budgets:
        return [Reason("budget", Verdict.undecided, f"no SLO belongs to {env}: its budget cannot be judged")]
    # While a freeze holds, the budget must climb back above `unfreeze_above` to lift it (hysteresis).
    limit = (
        policy.unfreeze_above if facts.frozen and policy.unfreeze_above is not None else policy.freeze_below
    )
    for budget in facts.budgets:
        figures = {"slo": budget.slo_id, "remaining": budget.remaining, "threshold": limit}
        if budget.remaining is None or not math.isfinite(budget.remaining):
            why = f": {budget.detail}" if budget.detail else ""
            reasons.append(
                Reason("budget", Verdict.undecided, f"{env} budget of {budget.slo_id} unknown{why}", figures)
            )
        elif budget.remaining < limit:
            held = " (the freeze lifts above it)" if limit != policy.freeze_below else ""
            text = f"{env} budget {_pct(budget.remaining)} < {_pct(limit)}{held} ({budget.slo_id})"
            reasons.append(Reason("budget", Verdict.blocked, text, figures))
        else:
            text = f"{env} budget {_pct(budget.remaining)} ≥ {_pct(limit)} ({budget.slo_id})"
            reasons.append(Reason("budget", Verdict.allowed, text, figures))
    return reasons


def soak_reasons(facts: Facts, policy: GatePolicy) -> list[Reason]:
    wanted = policy.soak
    soak = facts.soak
    if wanted is None:
        return []
    below, version = wanted.from_environment, facts.version
    if soak is None or soak.problem is not None:
        why = soak.problem if soak is not None and soak.problem else "not read"
        return [Reason("soak", Verdict.undecided, f"the soak in {below} could not be read: {why}")]
    if not soak.version_label:
        return [
            Reason(
                "soak",
                Verdict.undecided,
                f"{facts.model}'s metrics in {below} carry no version label: version {version}'s soak "
                "cannot be told from other versions'",
            )
        ]
    reasons = []
    served = soak.served_seconds or 0.0
    figures = {"environment": below, "served_seconds": served, "needed_seconds": wanted.duration}
    if served < wanted.duration:
        text = (
            f"version {version} served {_span(served)} in {below}; the soak needs {_span(wanted.duration)}"
            if served > 0
            else f"version {version} has not served in {below}; the soak needs {_span(wanted.duration)}"
        )
        reasons.append(Reason("soak", Verdict.blocked, text, figures))
    total, bad = soak.total or 0.0, soak.bad or 0.0
    counted = figures | {
        "bad": bad,
        "total": total,
        "min_events": wanted.min_events,
        "allowed": soak.allowed_ratio,
    }
    if total < wanted.min_events:
        text = (
            f"version {version} answered {total:.0f} requests in {below}; the soak needs {wanted.min_events}"
        )
        reasons.append(Reason("soak", Verdict.blocked, text, counted))
    else:
        ratio = bad / total
        counted["error_ratio"] = ratio
        verb = "≤" if ratio <= soak.allowed_ratio else ">"
        verdict = Verdict.allowed if ratio <= soak.allowed_ratio else Verdict.blocked
        text = (
            f"version {version} failed {ratio:.3%} of {total:.0f} requests in {below} over "
            f"{_span(min(served, wanted.duration))} ({verb} {soak.allowed_ratio:.3%} allowed)"
        )
        reasons.append(Reason("soak", verdict, text, counted))
    if soak.quality is not None:
        slo_id, wrong, allowed = soak.quality
        quality = {"slo": slo_id, "error_ratio": wrong, "allowed": allowed}
        if wrong is None or not math.isfinite(wrong):
            reasons.append(
                Reason(
                    "quality", Verdict.undecided, f"quality SLI {slo_id} has no data over the soak", quality
                )
            )
        elif wrong > allowed:
            text = f"quality SLI {slo_id}: {wrong:.2%} wrong over the soak, above the {allowed:.2%} allowed"
            reasons.append(Reason("quality", Verdict.blocked, text, quality))
        else:
            text = f"quality SLI {slo_id}: {wrong:.2%} wrong over the soak (≤ {allowed:.2%} allowed)"
            reasons.append(Reason("quality", Verdict.allowed, text, quality))
    return reasons


def decide(facts: Facts, policy: GatePolicy | None) -> Decision:
    """The decision for moving `facts.model` to `facts.version` in `facts.environment`."""
    env, version = facts.environment, facts.version
    if facts.current is not None and facts.current == version:
        return Decision(
            Verdict.allowed, (Reason("rollback", Verdict.allowed, f"{env} already serves version {version}"),)
        )
    if facts.served_before:
        text = f"version {version} served in {env} before: a rollback is never blocked"
        return Decision(Verdict.allowed, (Reason("rollback", Verdict.allowed, text),))
    if policy is None:
        return Decision(Verdict.allowed, (Reason("policy", Verdict.allowed, f"no gate is set for {env}"),))
    reasons = budget_reasons(facts, policy)
    if policy.freeze_on_page and facts.page_incidents:
        numbers = ", ".join(f"#{n}" for n in facts.page_incidents)
        reasons.append(
            Reason(
                "incident",
                Verdict.blocked,
                f"a page-level incident is open on {env}: {numbers}",
                {"incidents": list(facts.page_incidents)},
            )
        )
    reasons += soak_reasons(facts, policy)
    verdict = combine(reasons)
    if verdict == Verdict.blocked and facts.exception is not None:
        # A person may waive what blocks; what could not be judged stays undecided (missing data is
        # never "allowed", whoever asks).
        who, why = facts.exception
        reasons.append(
            Reason("exception", Verdict.allowed, f"exception granted by {who}: {why}", {"by": who})
        )
        verdict = (
            Verdict.undecided if any(r.verdict == Verdict.undecided for r in reasons) else Verdict.allowed
        )
    return Decision(verdict, tuple(reasons))


def combine(reasons: Sequence[Reason]) -> Verdict:
    if any(r.verdict == Verdict.blocked for r in reasons):
        return Verdict.blocked
    if any(r.verdict == Verdict.undecided for r in reasons):
        return Verdict.undecided
    return Verdict.allowed
