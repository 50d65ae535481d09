"""Slack message content, as pure functions: escaping, incident messages, command replies."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

SECTION_LIMIT = 3000  # characters in one section's text
MESSAGE_LIMIT = 3900
MENTION = re.compile(r"<(@[UW][A-Z0-9]+|#C[A-Z0-9]+|!subteam\^[A-Z0-9]+)(\|[^<>]*)?>")

INCIDENT_USAGE = (
    "Usage: /incident help | list [open|all] [service] | show ID | declare TITLE [SEV1-4] | ack ID | "
    "assign ID @user | sev ID SEVn | status ID STATUS | note ID TEXT | resolve ID | postmortem ID"
)
SLO_USAGE = "Usage: /slo list | status SLO | budget [service]"
SEVERITY_EMOJI = {
    "SEV1": ":red_circle:",
    "SEV2": ":large_orange_circle:",
    "SEV3": ":large_yellow_circle:",
    "SEV4": ":white_circle:",
}


def escape(text: str) -> str:
    """Escape &, < and > for mrkdwn but keep user, channel and group mentions; `<!channel>` is defused."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    protected = MENTION.sub(keep, text)
    escaped = protected.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], escaped)


def cut(text: str, limit: int, link: str | None = None) -> str:
    if len(text) <= limit:
        return text
    tail = f"… (<{link}|full text>)" if link else "…"
    return text[: limit - len(tail) - 1] + tail


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def incident_blocks(
    incident: Mapping[str, Any],
    evidence: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    slo: Mapping[str, Any] | None = None,
    runbook: str | None = None,
    api_url: str | None = None,
) -> list[dict[str, Any]]:
    """The one message that follows an incident: summary fields, evidence, and buttons."""
    number, status, severity = incident["id"], incident["status"], incident["severity"]
    link = f"{api_url}/api/v1/incidents/{number}" if api_url else None
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut(f"#{number} {incident['title']}", 150)},
        },
        {
            "type": "section",
            "fields": [
                _field("Severity", f"{SEVERITY_EMOJI.get(severity, '')} {severity}"),
                _field("Status", str(status)),
                _field("Service", escape(str(incident.get("service") or "-"))),
                _field("Commander", f"<@{incident['commander']}>" if incident.get("commander") else "-"),
            ],
        },
    ]
    if incident.get("summary"):
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": cut(escape(str(incident["summary"])), SECTION_LIMIT, link),
                },
            }
        )
    lines = []
    if slo:
        burns = ", ".join(
            f"{window} {figures['burn_rate']:.1f}x"
            for window, figures in slo.get("windows", {}).items()
            if figures.get("burn_rate") is not None and window in ("5m", "1h", "6h", "3d")
        )
        remaining = slo.get("budget_remaining")
        budget = f", budget left {remaining:.0%}" if remaining is not None else ""
        lines.append(f"*SLO* `{slo['id']}`: {slo.get('state')}; burn {burns or 'n/a'}{budget}")
    versions = list((evidence or {}).get("model_versions", []))
    serving = sorted({str(v["version"]) for v in versions if v["role"] == "serving"})
    if serving:
        lines.append(f"*Serving versions*: {', '.join(serving)}")
    suspect = next((v for v in versions if v["role"] == "suspect"), None)
    previous = next((v for v in versions if v["role"] == "previous_good"), None)
    if suspect:
        ratio = suspect["detail"].get("error_ratio")
        lines.append(
            f"*Suspect*: version {suspect['version']}"
            + (f" ({ratio:.2%} errors)" if ratio is not None else "")
            + (f"; previous good {previous['version']}" if previous else "")
        )
    drifted = [d["feature"] for d in (evidence or {}).get("drift_signals", []) if d["drifted"]]
    if drifted:
        lines.append(f"*Drift*: {', '.join(escape(f) for f in dict.fromkeys(drifted))}")
    logs = list((evidence or {}).get("log_evidence", []))[:3]
    if logs:
        lines.append(
            "*Top errors*: " + ", ".join(f"{escape(str(row['signature']))} ({row['count']})" for row in logs)
        )
    if runbook:
        lines.append(f"*Runbook*: {escape(runbook)}")
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": cut("\n".join(lines), SECTION_LIMIT, link)},
            }
        )
    blocks.append(
        {
            "type": "actions",
            "block_id": f"incident-{number}",
            "elements": incident_buttons(incident, previous),
        }
    )
    return blocks


def incident_buttons(incident: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    number, status = str(incident["id"]), incident["status"]
    buttons: list[dict[str, Any]] = []
    if status == "triggered":
        buttons.append(_button("Acknowledge", "incident_ack", number, "primary"))
    if status in ("triggered", "acknowledged", "mitigated"):
        buttons.append(_button("Resolve", "incident_resolve", number))
    if previous is not None and status != "resolved":
        buttons.append(rollback_button(number, str(previous["version"])))
    buttons.append(_button("Post review draft", "incident_postmortem", number))
    return buttons


def rollback_button(incident_id: int | str, version: str, environment: str | None = None) -> dict[str, Any]:
    """The button that proposes a rollback to `version` (in `environment`, else the incident's)."""
    value = f"{incident_id}:{version}" + (f":{environment}" if environment else "")
    return _button(f"Roll back to {version}", "incident_rollback", value, "danger")


def _button(text: str, action: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def fallback_text(incident: Mapping[str, Any]) -> str:
    return cut(
        f"#{incident['id']} [{incident['severity']}] {escape(str(incident['title']))} ({incident['status']})",
        MESSAGE_LIMIT,
    )


def incident_line(incident: Mapping[str, Any]) -> str:
    return f"#{incident['id']} {incident['severity']} {incident['status']}: {escape(str(incident['title']))}"


def slo_line(item: Mapping[str, Any]) -> str:
    windows = item.get("windows", {})
    burn = " ".join(
        f"{w}={windows[w]['burn_rate']:.1f}x"
        for w in ("5m", "1h", "6h", "3d")
        if windows.get(w, {}).get("burn_rate") is not None
    )
    remaining = item.get("budget_remaining")
    budget = f" budget={remaining:.1%}" if remaining is not None else ""
    exhaustion = item.get("time_to_exhaustion_seconds")
    eta = f" exhausted in {exhaustion / 3600:.1f}h" if exhaustion else ""
    return f"`{item['id']}` {item['state']} {burn}{budget}{eta}".rstrip()


def channel_name(incident_id: int, title: str) -> str:
    """`inc-12-fraud-model-failing`: Slack channel names are lowercase, 80 characters at most."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"inc-{incident_id}-{slug}"[:80].rstrip("-")
