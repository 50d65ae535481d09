"""The budget per version as each door words it, and the SLIs that cannot have one (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from app.chat import blocks
from app.config import ModelConfig
from app.ml import budget
from app.slo.model import ElasticsearchSli, EventsSli, RawSli, Slo

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MODELS = {"m": ModelConfig(slos=["s-a"])}


def slo(sli: object) -> Slo:
    return Slo(id="s-a", service="s", name="a", objective=0.999, sli=sli, source="t")  # type: ignore[arg-type]


def test_slack_line_names_the_version_its_share_and_how_long_it_served() -> None:
    four = budget.VersionBudget("4", 8036.0, 12000.0, 0.3100, datetime(2026, 5, 1, 11, 20, tzinfo=UTC), AT)
    figure = budget.BudgetByVersion("s-a", AT, True, period="30d", versions=(four,), budget_consumed=0.31)
    line = blocks.budget_line(figure.as_dict())
    assert line == "*Budget per version* (30d): version 4 spent 31.0 % of the 30d budget in 40 min"
    text = blocks.incident_blocks(
        {"id": 1, "title": "t", "status": "triggered", "severity": "SEV2", "commander": None},
        budget_by_version=figure.as_dict(),
    )
    assert any(line in str(block) for block in text)


def test_unavailable_is_said_with_its_reason_and_no_number() -> None:
    raw = budget.for_slo(object(), slo(RawSli("x")), MODELS, AT)
    logs = budget.for_slo(object(), slo(ElasticsearchSli("i", "@timestamp", None, "level:error")), MODELS, AT)
    unlinked = budget.for_slo(object(), slo(EventsSli("a{}", "b{}")), {}, AT)
    nothing = budget.for_slo(None, slo(EventsSli("a{}", "b{}")), MODELS, AT)
    assert "raw error ratio" in raw.reason and "Elasticsearch" in logs.reason
    assert "linked to no model" in unlinked.reason and nothing.reason == "no Prometheus configured"
    for figure in (raw, logs, unlinked, nothing):
        assert not figure.available and figure.versions == ()
        line = blocks.budget_line(figure.as_dict())
        assert line.startswith("*Budget per version*: not available: ") and "%" not in line


def test_a_recent_figure_is_reused_for_a_minute_and_then_read_again() -> None:
    from datetime import UTC, datetime

    from app.ml.budget import Recent, unavailable

    asked: list[str] = []

    def compute() -> object:
        asked.append("asked")
        return unavailable("a", datetime(2026, 12, 4, tzinfo=UTC), f"reading {len(asked)}")

    recent = Recent(ttl=60.0)
    first = recent.get("a", compute)  # type: ignore[arg-type]
    again = recent.get("a", compute)  # type: ignore[arg-type]
    assert first is again and asked == ["asked"]
    recent.get("b", compute)  # type: ignore[arg-type]
    assert len(asked) == 2  # per SLO
    recent.ttl = 0.0  # a minute later
    assert recent.get("a", compute).reason == "reading 3"  # type: ignore[arg-type]
