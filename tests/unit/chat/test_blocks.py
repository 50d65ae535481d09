from __future__ import annotations

from app.chat import blocks


def test_escape_keeps_mentions_and_defuses_broadcasts() -> None:
    text = "<@U123|ana> see <#C42|incidents> & <!channel> <script>x</script> <!subteam^S1|oncall>"
    assert blocks.escape(text) == (
        "<@U123|ana> see <#C42|incidents> &amp; &lt;!channel&gt; "
        "&lt;script&gt;x&lt;/script&gt; <!subteam^S1|oncall>"
    )


def test_cut_links_to_the_full_text() -> None:
    cut = blocks.cut("y" * 5000, 100, "http://sloguard/api/v1/incidents/1")
    assert len(cut) <= 100
    assert cut.endswith("… (<http://sloguard/api/v1/incidents/1|full text>)")
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
        "drift_signals": [{"feature": "amount", "drifted": True}, {"feature": "age", "drifted": False}],
        "log_evidence": [{"signature": "Timeout", "count": 7}],
    }
    content = blocks.incident_blocks(incident, evidence, runbook="runbooks/fraud-model-availability.md")
    text = content[2]["text"]["text"]
    assert "*Serving versions*: 3, 4" in text
    assert "*Suspect*: version 4 (10.00% errors); previous good 3" in text
    assert "*Drift*: amount" in text and "*Top errors*: Timeout (7)" in text
    buttons = [(b["action_id"], b["value"]) for b in content[-1]["elements"]]
    assert buttons == [
        ("incident_ack", "7"),
        ("incident_resolve", "7"),
        ("incident_rollback", "7:3"),
        ("incident_postmortem", "7"),
    ]
