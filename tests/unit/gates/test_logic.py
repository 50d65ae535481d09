"""The release gate's decision from plain facts: each rule can block, and missing data never allows."""

from __future__ import annotations

from dataclasses import replace

from app.gates.logic import Budget, Facts, Soak, Verdict, decide
from app.gates.policy import GatePolicy

POLICY = GatePolicy.model_validate(
    {"freeze_below": 0.25, "soak": {"from": "test", "for": "24h", "min_events": 1000}}
)
HEALTHY = Soak("test", served_seconds=30 * 3600, bad=5, total=10_000, allowed_ratio=0.001)
FACTS = Facts(
    model="ranker",
    version="5",
    environment="prod",
    current="4",
    served_before=False,
    budgets=[Budget("ranker-availability", 0.60)],
    soak=HEALTHY,
)


def texts(facts: Facts, policy: GatePolicy | None = POLICY) -> tuple[Verdict, list[str]]:
    decision = decide(facts, policy)
    return decision.verdict, [r.text for r in decision.reasons if r.verdict != Verdict.allowed]


def test_a_healthy_candidate_passes_with_every_reason_shown() -> None:
    decision = decide(FACTS, POLICY)
    assert decision.verdict == Verdict.allowed and decision.exit_code == 0
    shown = [r.text for r in decision.reasons]
    assert "prod budget 60.0 % ≥ 25.0 % (ranker-availability)" in shown
    assert any("failed 0.050% of 10000 requests in test over 24 h" in t for t in shown), shown


def test_a_spent_budget_blocks_with_its_figure() -> None:
    verdict, why = texts(replace(FACTS, budgets=[Budget("ranker-availability", 0.12)]))
    assert verdict == Verdict.blocked
    assert why == ["prod budget 12.0 % < 25.0 % (ranker-availability)"]


def test_a_freeze_lifts_only_above_the_higher_mark() -> None:
    hovering = replace(FACTS, budgets=[Budget("ranker-availability", 0.27)])
    assert decide(hovering, POLICY).verdict == Verdict.allowed  # never frozen: 27 % is above 25 %
    verdict, why = texts(replace(hovering, frozen=True))  # frozen: it must climb past 30 %
    assert verdict == Verdict.blocked and "27.0 % < 30.0 %" in why[0]


def test_a_short_soak_or_too_little_traffic_blocks() -> None:
    brief = replace(HEALTHY, served_seconds=2 * 3600)
    verdict, why = texts(replace(FACTS, soak=brief))
    assert verdict == Verdict.blocked and why == ["version 5 served 2 h in test; the soak needs 24 h"]
    quiet = replace(HEALTHY, bad=0, total=40)
    verdict, why = texts(replace(FACTS, soak=quiet))
    assert verdict == Verdict.blocked and "answered 40 requests in test; the soak needs 1000" in why[0]
    failing = replace(HEALTHY, bad=50, total=10_000)
    verdict, why = texts(replace(FACTS, soak=failing))
    assert verdict == Verdict.blocked and "0.500%" in why[0] and "> 0.100% allowed" in why[0]


def test_a_quality_sli_below_its_objective_blocks() -> None:
    wrong = replace(HEALTHY, quality=("ranker-quality", 0.05, 0.03))
    verdict, why = texts(replace(FACTS, soak=wrong))
    assert verdict == Verdict.blocked and "ranker-quality: 5.00% wrong" in why[0]


def test_missing_data_is_never_allowed() -> None:
    unknown = replace(FACTS, budgets=[Budget("ranker-availability", None, "source_error: down")])
    assert decide(unknown, POLICY).verdict == Verdict.undecided
    unlabelled = replace(FACTS, soak=replace(HEALTHY, version_label=False))
    verdict, why = texts(unlabelled)
    assert verdict == Verdict.undecided and "carry no version label" in why[0]
    down = replace(FACTS, soak=replace(HEALTHY, problem="prometheus at http://x: ConnectionError"))
    assert decide(down, POLICY).verdict == Verdict.undecided
    no_slos = replace(FACTS, budgets=[])
    assert decide(no_slos, POLICY).exit_code == 2


def test_blocked_beats_undecided() -> None:
    both = replace(FACTS, budgets=[Budget("a", 0.1), Budget("b", None)])
    assert decide(both, POLICY).verdict == Verdict.blocked


def test_a_rollback_is_never_blocked() -> None:
    burning = replace(
        FACTS, budgets=[Budget("ranker-availability", -2.0)], page_incidents=[7], served_before=True
    )
    decision = decide(burning, POLICY)
    assert decision.verdict == Verdict.allowed
    assert decision.reasons[0].text == "version 5 served in prod before: a rollback is never blocked"


def test_a_page_incident_freezes() -> None:
    verdict, why = texts(replace(FACTS, page_incidents=[3, 9]))
    assert verdict == Verdict.blocked and why == ["a page-level incident is open on prod: #3, #9"]
    lenient = POLICY.model_copy(update={"freeze_on_page": False})
    assert decide(replace(FACTS, page_incidents=[3]), lenient).verdict == Verdict.allowed


def test_an_exception_waives_what_blocks_but_not_what_is_unknown() -> None:
    spent = replace(FACTS, budgets=[Budget("ranker-availability", 0.12)], exception=("U0LEAD", "hotfix"))
    decision = decide(spent, POLICY)
    assert decision.verdict == Verdict.allowed
    assert decision.reasons[-1].text == "exception granted by U0LEAD: hotfix"
    blind = replace(spent, soak=replace(HEALTHY, problem="down"))
    assert decide(blind, POLICY).verdict == Verdict.undecided


def test_no_policy_allows_and_says_so() -> None:
    decision = decide(FACTS, None)
    assert decision.verdict == Verdict.allowed and decision.reasons[0].text == "no gate is set for prod"


def test_the_policy_refuses_a_lower_unfreeze_mark() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unfreeze_above"):
        GatePolicy.model_validate({"freeze_below": 0.3, "unfreeze_above": 0.2})
    assert GatePolicy.model_validate({"freeze_below": 0.25}).unfreeze_above == 0.30
