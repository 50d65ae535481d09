from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.chat import blocks

WJ = "\u2060"  # the invisible word joiner escape() puts after an @


def test_escape_shows_every_mention_and_link_as_text() -> None:
    text = (
        "<@U123|ana> see <#C42|incidents> & <!channel> <!here> <!everyone> <script>x</script> "
        "<!subteam^S1|oncall> <http://evil.example|your bank> <!date^1392734382^{date}|x>"
    )
    assert blocks.escape(text) == (
        f"&lt;@{WJ}U123|ana&gt; see &lt;#C42|incidents&gt; &amp; &lt;!channel&gt; &lt;!here&gt; "
        "&lt;!everyone&gt; &lt;script&gt;x&lt;/script&gt; &lt;!subteam^S1|oncall&gt; "
        "&lt;http://evil.example|your bank&gt; &lt;!date^1392734382^{date}|x&gt;"
    )


def test_escape_keeps_bare_broadcast_words_from_ever_being_linked() -> None:
    assert blocks.escape("@here @Channel @everyone ops@example.com @ alone") == (
        f"@{WJ}here @{WJ}Channel @{WJ}everyone ops@{WJ}example.com @ alone"
    )


def test_user_mentions_only_slack_user_ids() -> None:
    assert blocks.user("U024BE7LH") == "<@U024BE7LH>"
    assert blocks.user("W0123ABC") == "<@W0123ABC>"
    assert blocks.user("<!channel>") == "&lt;!channel&gt;"
    assert blocks.user("U1> <!here") == "U1&gt; &lt;!here"
    assert blocks.user("ana@example.com") == f"ana@{WJ}example.com"


def test_restore_mentions_only_for_known_ids() -> None:
    escaped = blocks.escape("ask <@U1>, <!subteam^S9> or <@U666>")
    assert blocks.restore_mentions(escaped, {"U1", "S9"}) == f"ask <@U1>, <!subteam^S9> or &lt;@{WJ}U666&gt;"


def test_incident_message_shows_hostile_fields_as_text() -> None:
    incident = {
        "id": 3,
        "title": "<!channel> title",
        "status": "triggered",
        "severity": "SEV1",
        "service": "<!subteam^S1> svc",
        "commander": "<!here>",
        "summary": "<@U9> summary",
    }
    evidence: dict[str, list[dict[str, Any]]] = {
        "model_versions": [
            {"version": "<!channel>", "role": "serving", "detail": {}},
            {"version": "<@U7>", "role": "suspect", "detail": {}},
            {"version": "<#C1>", "role": "previous_good", "detail": {}},
        ],
        "drift_signals": [{"feature": "<!everyone>", "drifted": True}],
        "log_evidence": [{"signature": "<!here> Timeout", "count": 2}],
    }
    content = blocks.incident_blocks(incident, evidence, runbook="<http://evil|runbook>")
    texts = [blocks.fallback_text(incident), blocks.incident_line(incident)] + [
        part["text"]
        for block in content
        for part in [block.get("text") or {}, *block.get("fields", [])]
        if part.get("type") == "mrkdwn"
    ]
    assert all("<" not in text and ">" not in text for text in texts), texts
    joined = "\n".join(texts)
    assert "*Commander*\n&lt;!here&gt;" in joined
    assert "*Suspect*: version &lt;@" in joined and "previous good &lt;#C1&gt;" in joined
    assert "*Serving versions*: &lt;!channel&gt;" in joined


def test_cut_links_to_the_full_text() -> None:
    cut = blocks.cut("y" * 5000, 100, "http://sloguard/incidents/1")
    assert len(cut) <= 100
    assert cut.endswith("… (<http://sloguard/incidents/1|full text>)")
    assert blocks.cut("short", 100) == "short"


def test_incident_message_carries_evidence_and_buttons() -> None:
    incident = {
        "id": 7,
        "title": "Fraud model failing",
        "status": "triggered",
        "severity": "SEV2",
        "service": "fraud-model",
    }
    evidence = {
        "model_versions": [
            {"version": "3", "role": "serving", "detail": {}},
            {"version": "4", "role": "serving", "detail": {}},
            {"version": "4", "role": "suspect", "detail": {"error_ratio": 0.1}},
            {"version": "3", "role": "previous_good", "detail": {"error_ratio": 0.0}},
        ],
        "drift_signals": [
            {
                "feature": "amount",
                "method": "ks",
                "score": 0.12,
                "threshold": 0.07,
                "p_value": 0.0004,
                "drifted": True,
                "state": "drifted",
                "n": 412,
                "effect": 0.12,
            },
            {
                "feature": "amount",
                "method": "psi",
                "score": 0.31,
                "threshold": 0.04,
                "p_value": 0.0002,
                "drifted": True,
                "state": "drifted",
                "n": 412,
                "effect": 0.31,
            },
            {
                "feature": "age",
                "method": "psi",
                "score": 0.01,
                "threshold": 0.04,
                "p_value": 0.4,
                "drifted": False,
                "state": "ok",
                "n": 412,
                "effect": 0.01,
            },
            {
                "feature": "hour",
                "method": "psi",
                "score": None,
                "threshold": None,
                "p_value": None,
                "drifted": False,
                "state": "insufficient_data",
                "n": 12,
                "effect": None,
            },
            {"feature": "merchant", "method": "gauge", "score": 0.2, "threshold": 0.1, "drifted": True},
        ],
        "log_evidence": [{"signature": "Timeout", "count": 7}],
    }
    content = blocks.incident_blocks(incident, evidence, runbook="runbooks/fraud-model-availability.md")
    text = content[2]["text"]["text"]
    assert "*Serving versions*: 3, 4" in text
    assert "*Suspect*: version 4 (10.00% errors); previous good 3" in text
    # The strongest method for each drifted feature (PSI 0.31 is 15x its minimum, KS 0.12 4x), with the
    # threshold calibrated at n, the p-value and n; too few values said so; the server's gauge its own.
    assert (
        "*Drift*: amount: PSI 0.31 &gt; 0.04 (p &lt; 0.001, n 412); hour: too few values to judge (12); "
        "merchant: 0.2 by the model server's own score (threshold 0.1)"
    ) in text
    assert "age" not in text and "*Top errors*: Timeout (7)" in text
    # The metrics saw both serve in the hours up to detection (3 until the deploy, 4 since): the suspect
    # still serves, so the rollback to 3 is offered.
    buttons = [(b["action_id"], b["value"]) for b in content[-2]["elements"]]
    assert buttons == [
        ("incident_ack", "7"),
        ("incident_resolve", "7"),
        ("incident_rollback", "7:3"),
        ("incident_postmortem", "7"),
    ]


def test_incident_message_links_to_the_console_page_and_draft() -> None:
    incident = {"id": 7, "title": "t", "status": "resolved", "severity": "SEV2"}
    content = blocks.incident_blocks(incident, console_url="https://sloguard.example")
    context = next(b for b in content if b["type"] == "context")["elements"][0]["text"]
    assert "<https://sloguard.example/incidents/7|in sloguard>" in context
    assert "<https://sloguard.example/incidents/7/draft|review draft>" in context
    plain = blocks.incident_blocks(incident)  # no public address: no link to a console nobody can reach
    assert "in sloguard" not in str(plain) and "review draft>" not in str(plain)


T = datetime(2026, 12, 2, 15, 44, 16, tzinfo=UTC)
OPEN = {"id": 7, "title": "t", "status": "acknowledged", "severity": "SEV2", "started_at": T}
# The metrics' view: both versions served in the hours up to detection; 4 is the suspect.
SEEN = [
    {"version": "3", "role": "serving", "source": "prometheus", "detail": {"error_ratio": 0.0005}},
    {"version": "4", "role": "serving", "source": "prometheus", "detail": {"error_ratio": 0.03}},
    {"version": "4", "role": "suspect", "source": "prometheus", "detail": {"error_ratio": 0.03}},
    {"version": "3", "role": "previous_good", "source": "prometheus", "detail": {"error_ratio": 0.0005}},
]


def actions(content: list[dict[str, Any]]) -> list[str]:
    (row,) = [block for block in content if block["type"] == "actions"]
    return [f"{e['action_id']}:{e['value']}" for e in row["elements"]]


def section_text(content: list[dict[str, Any]]) -> str:
    return "\n".join(b["text"]["text"] for b in content if b["type"] == "section" and "text" in b)


def context_of(content: list[dict[str, Any]]) -> str:
    (row,) = [block for block in content if block["type"] == "context"]
    text: str = row["elements"][0]["text"]
    return text


def test_the_rollback_is_offered_while_the_suspect_serves() -> None:
    assert "incident_rollback:7:3" in actions(blocks.incident_blocks(OPEN, {"model_versions": SEEN}))
    # The registry's alias still on the suspect (as enrichment read it, or by its last announced move).
    alias_on_suspect = [*SEEN, {"version": "4", "role": "serving", "source": "registry", "detail": {}}]
    assert "incident_rollback:7:3" in actions(
        blocks.incident_blocks(OPEN, {"model_versions": alias_on_suspect})
    )
    moved_back = blocks.incident_blocks(OPEN, {"model_versions": SEEN}, alias_version="4")
    assert "incident_rollback:7:3" in actions(moved_back)


def test_no_rollback_button_once_the_previous_good_version_already_serves() -> None:
    # Someone moved the alias to 3 outside sloguard: its last announced move says so.
    moved = blocks.incident_blocks(OPEN, {"model_versions": SEEN}, alias_version="3")
    assert actions(moved) == ["incident_resolve:7", "incident_postmortem:7"]
    # Evidence gathered again after that move: the registry's alias is on 3, the suspect serves no more.
    alias_on_good = [*SEEN, {"version": "3", "role": "serving", "source": "registry", "detail": {}}]
    regathered = blocks.incident_blocks(OPEN, {"model_versions": alias_on_good})
    assert actions(regathered) == ["incident_resolve:7", "incident_postmortem:7"]
    # Metrics only, and only the previous good version among what serves (no suspect serving).
    only_good = [v for v in SEEN if not (v["role"] == "serving" and v["version"] == "4")]
    assert "incident_rollback:7:3" not in actions(blocks.incident_blocks(OPEN, {"model_versions": only_good}))
    # ... and sloguard's own rollback, recorded as the version it moved to.
    done = [*SEEN, {"version": "3", "role": "rolled_back_to", "source": "registry", "detail": {}}]
    assert "incident_rollback:7:3" not in actions(blocks.incident_blocks(OPEN, {"model_versions": done}))


def test_a_rollback_undone_in_the_registry_is_offered_again() -> None:
    # sloguard rolled back to 3 (recorded, verified); then the alias was moved back to the suspect, 4, and
    # MLflow announced it: the suspect serves again, so the rollback is worth offering again (as the
    # console does). While the registry says 3 it is not.
    done = [*SEEN, {"version": "3", "role": "rolled_back_to", "source": "registry", "detail": {}}]
    change = {"kind": "rollback", "model": "fraud-model", "from_version": "4", "to_version": "3"}
    change |= {"environment": "prod", "actor": "U0ALICE", "state": "verified"}
    evidence = {"model_versions": done}
    assert "incident_rollback:7:3" in actions(
        blocks.incident_blocks(OPEN, evidence, change=change, alias_version="4")
    )
    assert "incident_rollback:7:3" not in actions(
        blocks.incident_blocks(OPEN, evidence, change=change, alias_version="3")
    )
    # A rollback under way is never offered twice, whatever the registry says.
    pending = change | {"state": "executing"}
    assert "incident_rollback:7:3" not in actions(
        blocks.incident_blocks(OPEN, evidence, change=pending, alias_version="4")
    )


@pytest.mark.parametrize(
    ("state", "shown", "offered"),
    [
        ("proposed", "proposed, waiting for confirmation", False),
        ("confirmed", "executing", False),
        ("executing", "executing", False),
        ("succeeded", "done; watching the burn", False),
        ("verified", "recovered", False),
        ("not_recovered", "not recovered", False),
        ("failed", "failed", True),  # nothing changed: it may be tried again
    ],
)
def test_the_rollback_state_in_the_message(state: str, shown: str, offered: bool) -> None:
    change = {
        "kind": "rollback",
        "model": "fraud-model",
        "from_version": "4",
        "to_version": "3",
        "environment": "prod",
        "actor": "U0ALICE",
        "state": state,
    }
    content = blocks.incident_blocks(OPEN, {"model_versions": SEEN}, change=change)
    assert f"*Rollback*: fraud-model 4 → 3 in prod by <@U0ALICE>: {shown}" in section_text(content)
    assert ("incident_rollback:7:3" in actions(content)) is offered


def test_the_context_line_says_when_it_opened_and_how_long_it_has_been_open() -> None:
    stamp = int((T + timedelta(minutes=2)).timestamp())
    opened = f"Opened <!date^{stamp}^{{date_short}} {{time}}|2026-12-02 15:46 UTC>"
    incident = OPEN | {"detected_at": T + timedelta(minutes=2)}
    later = T + timedelta(minutes=9, seconds=30)
    assert context_of(blocks.incident_blocks(incident, now=later)) == f"{opened} · open for 9 min 30 s"
    linked = blocks.incident_blocks(incident, console_url="https://sloguard.example", now=later)
    assert context_of(linked) == (
        f"{opened} · open for 9 min 30 s · <https://sloguard.example/incidents/7|in sloguard> · "
        "<https://sloguard.example/incidents/7/draft|review draft>"
    )
    # Resolved: how long it lasted, whatever the time now.
    resolved = incident | {"status": "resolved", "resolved_at": T + timedelta(hours=1, minutes=2)}
    shown = context_of(blocks.incident_blocks(resolved, now=T + timedelta(days=3)))
    assert shown == f"{opened} · lasted 1 h 2 min"
