"""Slack message content, as pure functions: escaping, incident messages, command replies."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.durations import spoken
from app.incidents.models import OPEN_STATUSES
from app.ml.drift_view import describe as describe_drift
from app.slo.coverage import partial_note

SECTION_LIMIT = 3000  # characters in one section's text
MESSAGE_LIMIT = 3900
# Slack user ids (W: Enterprise Grid). Real ones are 9-11 characters; any length up to the column's is
# accepted (tests and demos use `U1`), what matters is that nothing but [A-Z0-9] can follow the U.
USER_ID = re.compile(r"[UW][A-Z0-9]{1,39}")
# A bare @word (`@here`, `@channel`, `@everyone`, `@bob`) is text only while nothing links names: sloguard
# never sends `link_names` or `parse=full`, but mrkdwn text objects are "automatically parsed" for "certain
# mentions" (Slack does not say which). An invisible WORD JOINER after the @ keeps every such word from
# ever matching one, and shows the same.
BARE_AT = re.compile(r"@(?=\w)")
WORD_JOINER = "\u2060"
# What `escape` left of a mention that sloguard.yaml names (for `restore_mentions`).
ESCAPED_MENTION = re.compile(r"&lt;(@\u2060|!subteam\^)([A-Z0-9]+)&gt;")

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


def escape(text: object) -> str:
    """Text that did not come from sloguard.yaml, as mrkdwn that shows exactly what was written.

    `&`, `<` and `>` become entities, so no `<!channel>`, `<!here>`, `<!subteam^…>`, `<@…>`, `<#…>`,
    `<!date…>` or `<http://x|label>` in it is ever parsed (each is shown as typed), and a bare `@word`
    gets an invisible word joiner after its @ (see BARE_AT). Mentions sloguard means are added around the
    escaped text: `user` and `restore_mentions`.
    """
    escaped = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return BARE_AT.sub("@" + WORD_JOINER, escaped)


def user(user_id: object) -> str:
    """A mention of a Slack user id (from a signed request, or a commander field that holds one); any
    other value, e.g. a commander set through the API to free text, is shown as escaped text."""
    text = str(user_id)
    return f"<@{text}>" if USER_ID.fullmatch(text) else escape(text)


def restore_mentions(escaped: str, known: Collection[str]) -> str:
    """Turn back into mentions the `<@ID>` / `<!subteam^ID>` that `escape` neutralised, for ids in `known`
    only (the user and group ids sloguard.yaml names): domain messages such as "you may not roll back
    …; ask <@U1>, <@U2>" keep their approvers' mentions, while an id typed by someone else stays text."""
    return ESCAPED_MENTION.sub(
        lambda m: f"<{m.group(1).rstrip(WORD_JOINER)}{m.group(2)}>" if m.group(2) in known else m.group(0),
        escaped,
    )


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
    console_url: str | None = None,
    change: Mapping[str, Any] | None = None,
    budget_by_version: Mapping[str, Any] | None = None,
    *,
    alias_version: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The one message that follows an incident, as it stands at `now`: summary fields, evidence, and
    buttons. With the console's address (SLOGUARD_PUBLIC_URL), it links to the incident's page and its
    review draft. `alias_version` is where the registry alias points by its last announced move since the
    incident began (None when none was announced, or the alias was removed)."""
    number, status, severity = incident["id"], incident["status"], incident["severity"]
    link = f"{console_url}/incidents/{number}" if console_url else None
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": cut(f"#{number} {incident['title']}", 150)},
        },
        {
            "type": "section",
            "fields": [
                _field("Severity", f"{SEVERITY_EMOJI.get(severity, '')} {escape(severity)}"),
                _field("Status", escape(status)),
                _field("Service", escape(incident.get("service") or "-")),
                _field("Commander", user(incident["commander"]) if incident.get("commander") else "-"),
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
        figures = slo.get("windows", {})
        burns = ", ".join(
            f"{escape(window)} {figures[window]['burn_rate']:.1f}×"
            for window in slo.get("own_windows") or figures
            if (figures.get(window) or {}).get("burn_rate") is not None
        )
        remaining = slo.get("budget_remaining")
        budget = (
            f", budget left {remaining:.0%}{partial_note(slo.get('budget'))}" if remaining is not None else ""
        )
        lines.append(
            f"*SLO* `{escape(slo['id'])}`: {escape(slo.get('state'))}; burn {burns or 'n/a'}{budget}"
        )
    if budget_by_version:
        lines.append(budget_line(budget_by_version))
    versions = list((evidence or {}).get("model_versions", []))
    # Versions are metric label values and registry entries: as untrusted as any other text.
    serving = sorted({str(v["version"]) for v in versions if v["role"] == "serving"})
    if serving:
        lines.append(f"*Serving versions*: {', '.join(escape(v) for v in serving)}")
    suspect = next((v for v in versions if v["role"] == "suspect"), None)
    previous = next((v for v in versions if v["role"] == "previous_good"), None)
    if suspect:
        lines.append(
            f"*Suspect*: version {escape(suspect['version'])}{_ratio(suspect)}"
            + (f"; previous good {escape(previous['version'])}{_ratio(previous)}" if previous else "")
        )
    drift = describe_drift((evidence or {}).get("drift_signals", []))
    if drift:
        lines.append(f"*Drift*: {escape('; '.join(drift[:4]))}")
    logs = list((evidence or {}).get("log_evidence", []))[:3]
    if logs:
        lines.append(
            "*Top errors*: "
            + ", ".join(f"{escape(row['signature'])} ({escape(row['count'])})" for row in logs)
        )
    if change:
        lines.append(change_line(change))
    lines.extend(time_lines(incident))
    if runbook:
        url = runbook.replace("&", "&amp;")
        shown = f"<{url}|{escape(runbook)}>" if LINKABLE.fullmatch(runbook) else f"`{escape(runbook)}`"
        lines.append(f"*Runbook*: {shown}")
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": cut("\n".join(lines), SECTION_LIMIT, link)},
            }
        )
    used = previous is not None and _used(previous, suspect, change, versions, alias_version)
    offer = previous if not used else None
    blocks.append(
        {
            "type": "actions",
            "block_id": f"incident-{number}",
            "elements": incident_buttons(incident, offer),
        }
    )
    context = context_line(incident, link, now or datetime.now(UTC))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return blocks


LINKABLE = re.compile(r"https?://[^\s<>|]{1,500}")
CHANGE_STATES = {
    "proposed": "proposed, waiting for confirmation",
    "confirmed": "executing",
    "executing": "executing",
    "succeeded": "done; watching the burn",
    "verified": "recovered",
    "not_recovered": "not recovered",
    "failed": "failed",
}


def budget_line(figure: Mapping[str, Any]) -> str:
    """`*Budget per version* (30d): version 4 spent 31.2 % of the 30d budget in 40 min; …`."""
    if not figure.get("available"):
        return f"*Budget per version*: not available: {escape(figure.get('reason') or 'unknown')}"
    versions = list(figure.get("versions") or [])
    if not versions:
        return f"*Budget per version* ({escape(figure.get('period'))}): no version spent any"
    shown = "; ".join(escape(v.get("text", "")) for v in versions[:3])
    more = f"; {len(versions) - 3} more" if len(versions) > 3 else ""
    return f"*Budget per version* ({escape(figure.get('period'))}): {shown}{more}"


def _ratio(version: Mapping[str, Any]) -> str:
    ratio = (version.get("detail") or {}).get("error_ratio")
    return f" ({ratio:.2%} errors)" if isinstance(ratio, int | float) else ""


def change_line(change: Mapping[str, Any]) -> str:
    """`*Rollback*: fraud-model 2 → 1 in prod by @ana: recovered`."""
    kind = "Promotion" if change.get("kind") == "promote" else "Rollback"
    state = CHANGE_STATES.get(str(change.get("state")), escape(change.get("state")))
    return (
        f"*{kind}*: {escape(change['model'])} {escape(change.get('from_version') or '?')} → "
        f"{escape(change['to_version'])} in {escape(change['environment'])} "
        f"by {user(change['actor'])}: {state}"
    )


def serving_now(versions: Sequence[Mapping[str, Any]], alias_version: str | None = None) -> set[str]:
    """The versions that serve now, as far as the message knows: the registry alias's last announced
    move, else the alias as enrichment read it, else every version the metrics saw serving (in the hours
    up to detection: the previous good one among them, until the deploy)."""
    if alias_version is not None:
        return {alias_version}
    serving = [v for v in versions if v["role"] == "serving"]
    registry = {str(v["version"]) for v in serving if v.get("source") == "registry"}
    return registry or {str(v["version"]) for v in serving}


def _used(
    previous: Mapping[str, Any],
    suspect: Mapping[str, Any] | None,
    change: Mapping[str, Any] | None,
    versions: Sequence[Mapping[str, Any]],
    alias_version: str | None,
) -> bool:
    """No button for the rollback to the previous good version once it was asked for (and has not
    failed) or done, or when that version already serves and the suspect no longer does (moved outside
    sloguard, say): the rollback would change nothing, and sloguard would refuse it. Once the registry
    has announced where the alias points, that decides: a change undone (the suspect serves again) is
    offered again, as the console does."""
    version = str(previous["version"])
    to_it = change is not None and str(change.get("to_version")) == version
    if to_it and change is not None and change.get("state") in ("proposed", "confirmed", "executing"):
        return True  # under way
    if alias_version is None:
        if to_it and change is not None and change.get("state") != "failed":
            return True
        if any(
            v["role"] in ("rolled_back_to", "promoted_to") and str(v["version"]) == version for v in versions
        ):
            return True
    serving = serving_now(versions, alias_version)
    return suspect is not None and version in serving and str(suspect["version"]) not in serving


def context_line(incident: Mapping[str, Any], link: str | None, now: datetime) -> str:
    """`Opened 15:44 UTC · open for 4 min · in sloguard · review draft` (the links on the console); the
    time open counts from `started_at`, as the review draft's does."""
    started, detected = incident.get("started_at"), incident.get("detected_at")
    parts = [f"Opened {when(detected)}"]
    if isinstance(started, datetime):
        end = incident.get("resolved_at") or now
        parts.append(
            ("open for " if incident.get("resolved_at") is None else "lasted ")
            + spoken((end - started).total_seconds())
        )
    if link:
        parts.append(f"<{link}|in sloguard>")
        parts.append(f"<{link}/draft|review draft>")
    return " · ".join(parts)


def when(moment: Any) -> str:
    """A time Slack shows in each reader's own time zone (`<!date^…>`), UTC where it cannot."""
    if not isinstance(moment, datetime):
        return "-"
    fallback = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(moment.timestamp())}^{{date_short}} {{time}}|{fallback}>"


def time_lines(incident: Mapping[str, Any]) -> list[str]:
    """The record's times, as the API and the review draft give them (the README's definitions)."""
    started, detected = incident.get("started_at"), incident.get("detected_at")
    began, ended = incident.get("impact_started_at"), incident.get("impact_ended_at")
    lines = []
    if began is not None:
        span = f"to {when(ended)} ({spoken((ended - began).total_seconds())})" if ended else "and going on"
        consumed = incident.get("impact_budget_consumed")
        budget = f", {consumed:.1%} of the error budget" if consumed is not None else ""
        lines.append(f"*Impact*: from {when(began)} {span}{budget}")
    elif incident.get("impact_method") == "unknown":
        lines.append("*Impact*: window unknown (no SLI to measure it from, or no step exceeded)")
    if isinstance(started, datetime) and isinstance(detected, datetime):
        parts = [f"*Detected* {when(detected)} (MTTD {spoken((detected - started).total_seconds())})"]
        mitigated = incident.get("mitigated_at")
        if isinstance(mitigated, datetime):
            parts.append(
                f"*mitigated* {when(mitigated)} (after {spoken((mitigated - started).total_seconds())})"
            )
        lines.append("; ".join(parts))
    return lines


def incident_buttons(incident: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    number, status = str(incident["id"]), incident["status"]
    buttons: list[dict[str, Any]] = []
    if status == "triggered":
        buttons.append(_button("Acknowledge", "incident_ack", number, "primary"))
    if status in OPEN_STATUSES:
        buttons.append(_button("Resolve", "incident_resolve", number))
    if previous is not None and status in OPEN_STATUSES:
        buttons.append(rollback_button(number, str(previous["version"])))
    buttons.append(_button("Post review draft", "incident_postmortem", number))
    return buttons


def rollback_button(incident_id: int | str, version: str, environment: str | None = None) -> dict[str, Any]:
    """The button that proposes a rollback to `version` (in `environment`, else the incident's)."""
    value = f"{incident_id}:{version}" + (f":{environment}" if environment else "")
    # A button label is plain text of at most 75 characters; Slack refuses the whole message past that.
    return _button(cut(f"Roll back to {version}", 75), "incident_rollback", value, "danger")


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
        f"#{incident['id']} [{escape(incident['severity'])}] {escape(incident['title'])} "
        f"({escape(incident['status'])})",
        MESSAGE_LIMIT,
    )


def incident_line(incident: Mapping[str, Any]) -> str:
    return (
        f"#{incident['id']} {escape(incident['severity'])} {escape(incident['status'])}: "
        f"{escape(incident['title'])}"
    )


def slo_line(item: Mapping[str, Any]) -> str:
    windows = item.get("windows", {})
    burn = " ".join(
        f"{escape(w)} {windows[w]['burn_rate']:.1f}×"
        for w in item.get("own_windows") or windows
        if (windows.get(w) or {}).get("burn_rate") is not None
    )
    remaining = item.get("budget_remaining")
    budget = f" budget={remaining:.1%}{partial_note(item.get('budget'))}" if remaining is not None else ""
    exhaustion = item.get("time_to_exhaustion_seconds")
    eta = f" exhausted in {exhaustion / 3600:.1f}h" if exhaustion else ""
    return f"`{escape(item['id'])}` {escape(item['state'])} {burn}{budget}{eta}".rstrip()


def channel_name(incident_id: int, title: str) -> str:
    """`inc-12-fraud-model-failing`: Slack channel names are lowercase, 80 characters at most."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"inc-{incident_id}-{slug}"[:80].rstrip("-")
