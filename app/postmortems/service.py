"""Post-incident review drafts: gather what sloguard knows, render Markdown and SVG charts, keep edits.

Rendering uses a sandboxed Jinja2 environment (a team's own template cannot reach Python internals).
Every value the template writes goes through `md` (HTML entities and Markdown syntax escaped, so the draft
is inert in any Markdown viewer) and every link target through `safe_url` (http, https or relative only).
Sections between `<!-- sloguard:keep NAME -->` and `<!-- sloguard:end -->`
are taken from the existing draft when it is regenerated.
"""

from __future__ import annotations

import html
import logging
import math
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db, durations, outbox, promql_build
from app.chat import people
from app.errors import ServiceError, SourceError
from app.events import Dispatcher, IncidentStatusChanged
from app.incidents import record
from app.incidents import service as incidents
from app.incidents.models import Incident
from app.ml import budget as version_budget
from app.ml import drift_view
from app.ml import service as ml
from app.ml.versions import VersionSeen
from app.planned import windows as planned_windows
from app.postmortems import charts
from app.postmortems.charts import chart_step
from app.rollback.models import RollbackAction
from app.slo import burn
from app.slo.model import EventsSli, Slo

if TYPE_CHECKING:
    from app.services import Services
    from app.slo.service import SloEngine

log = logging.getLogger(__name__)
BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
KEEP = re.compile(r"<!-- sloguard:keep ([\w-]+) -->\n(.*?)<!-- sloguard:end -->", re.DOTALL)
# Markdown's backslash escapes for the punctuation that means something inline (Python-Markdown honours
# exactly these). `&`, `<` and `>` are written as entities instead: Python-Markdown does not honour `\<`,
# so `\<script>` stayed a tag.
MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|])")
# At the start of a line, `- x` is a list item and `1. x` an ordered one (the marker, then a space).
MD_BULLET = re.compile(r"^(\s*)-(?=\s|$)")
MD_ORDERED = re.compile(r"^(\s*\d{1,9})([.)])(?=\s|$)")
SAFE_SCHEMES = ("http", "https")
# Characters a URL keeps in a Markdown link destination; the rest are percent-encoded.
URL_SAFE = "/:?#@!$&'+,;=%~-._"
POLICY_SHARE = 0.20  # one incident spending more than this much of the budget needs a P0 action item


class TemplateRefused(ServiceError):
    status_code = 422


def md(value: object) -> str:
    """Escape HTML and Markdown so text shows as written, and cannot inject markup or links, whether the
    draft is read as Markdown or as the HTML view. One line: a newline could start a block."""
    text = "" if value is None else " ".join(str(value).splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = MD_SPECIAL.sub(r"\\\1", text)
    text = MD_BULLET.sub(r"\1\\-", text)
    return MD_ORDERED.sub(r"\1\\\2", text)


def safe_url(value: object) -> str | None:
    """The URL ready for a Markdown link, if it is http(s) or relative to the repository; None otherwise
    (`javascript:`, `data:`, `vbscript:`, `//host`, or anything a browser could read as one)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url or any(ord(char) < 0x20 or ord(char) == 0x7F or char == "\\" for char in url):
        return None  # browsers drop tabs and newlines inside a scheme, and read `\` as `/`
    for form in {url, html.unescape(url), urllib.parse.unquote(url)}:  # `javascript&#58;` in an href too
        parts = urllib.parse.urlsplit(form)
        if parts.scheme:
            if parts.scheme.lower() not in SAFE_SCHEMES or not parts.netloc:
                return None
        elif parts.netloc or ":" in form.split("/", 1)[0]:
            return None  # protocol-relative, or a colon a browser might still read as a scheme
    return urllib.parse.quote(url, safe=URL_SAFE)


duration = durations.spoken


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Draft:
    path: Path
    markdown: str
    context: dict[str, Any]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50] or "incident"


def draft_path(directory: Path, incident: Incident) -> Path:
    return directory / f"{incident.detected_at:%Y-%m-%d}-{incident.id}-{slug(incident.title)}.md"


def _budget(incident: Incident, slo: Slo | None) -> dict[str, Any] | None:
    """The budget the impact window consumed, from the figures measured and stored with the incident
    (app/incidents/record.py): the draft says what the API says."""
    if slo is None or incident.impact_budget_consumed is None:
        return None
    share = incident.impact_budget_consumed
    counted = incident.impact_method == "events" and incident.impact_budget_events is not None
    return {
        "slo_id": slo.id,
        "objective_percent": f"{slo.objective * 100:g} %",
        "period": durations.format_prometheus(slo.period_seconds),
        "bad_events": f"{incident.impact_bad_events or 0:,.0f}" if counted else None,
        "total_events": f"{incident.impact_total_events or 0:,.0f}" if counted else None,
        "budget_events": f"{incident.impact_budget_events:,.0f}" if counted else None,
        "consumed": share,
        "consumed_percent": f"{share * 100:.1f} %",
        "policy_p0": share > POLICY_SHARE,
        "remaining_percent": None,
        "exhausted": False,
    }


def _impact(incident: Incident) -> dict[str, Any]:
    """The impact window as the draft states it: measured, going on, or unknown."""
    started, ended = incident.impact_started_at, incident.impact_ended_at
    return {
        "method": incident.impact_method or "not_measured",
        "started": _utc(started),
        "ended": _utc(ended),
        "duration": duration((ended - started).total_seconds()) if started and ended else None,
    }


def chart_window(slo: Slo) -> burn.Window:
    """The window each chart point's error ratio covers: the fast page's short window (5m for 30 days)."""
    page = next((t for t in slo.tiers if t.name == "page-fast"), slo.tiers[0])
    return page.short


Points = list[tuple[datetime, float | None]]


def _range_points(prometheus: Any, query: str, start: datetime, end: datetime, window: int) -> Points:
    """One value per chart step from `start` to `end` (None where Prometheus had none).

    Points sit on whole steps (incident times carry fractions of a second that Prometheus would echo
    back rounded), and no point lies after `end`."""
    step = chart_step(start, end, window)
    first = datetime.fromtimestamp(math.floor(start.timestamp() / step) * step, UTC)
    result = prometheus.query_range(query, first, end, step)
    # No traffic in a window is 0/0: NaN from Prometheus, no data on the chart.
    values = {
        round(float(t)): float(v)
        for t, v in (result[0]["values"] if result else [])
        if not math.isnan(float(v))
    }
    points: Points = []
    moment = first
    while moment <= end:
        points.append((moment, values.get(round(moment.timestamp()))))
        moment += timedelta(seconds=step)
    return points


def _events_sli(slo: Slo) -> EventsSli | None:
    sli = slo.prometheus_sli
    return sli if isinstance(sli, EventsSli) else None


def series_window(slo: Slo, start: datetime, end: datetime) -> str:
    """The window each error-ratio point covers: the fast page's short window, or the chart's step when
    that is longer, so that the points' windows tile the span and no burst falls between two points."""
    window = chart_window(slo).seconds
    return durations.format_prometheus(max(window, chart_step(start, end, window)))


def error_ratio_series(prometheus: Any, slo: Slo, start: datetime, end: datetime) -> Points:
    """The error ratio over `series_window`, one point a step."""
    sli = _events_sli(slo)
    if sli is None:
        return []
    window = series_window(slo, start, end)
    return _range_points(prometheus, sli.error_ratio(window), start, end, chart_window(slo).seconds)


def budget_series(prometheus: Any, slo: Slo, start: datetime, end: datetime) -> Points:
    """Error budget remaining over the SLO period ending at each point."""
    sli = _events_sli(slo)
    if sli is None:
        return []
    period = durations.format_prometheus(slo.period_seconds)
    spent = promql_build.binary(promql_build.group(sli.error_ratio(period)), "/", repr(slo.budget))
    remaining = promql_build.binary("1", "-", spent)
    return _range_points(prometheus, remaining, start, end, chart_window(slo).seconds)


def gather(engine: Engine, slo_engine: SloEngine, incident_id: int, now: datetime) -> dict[str, Any]:
    with Session(engine) as session:
        incident = incidents.get(session, incident_id)
        timeline = incidents.timeline(session, incident_id)
        alerts = incidents.alerts(session, incident_id)
        items = incidents.action_items(session, incident_id)
        evidence = ml.evidence(session, incident_id)
        actions = session.exec(
            select(RollbackAction)
            .where(RollbackAction.incident_id == incident_id)
            .order_by(col(RollbackAction.id))
        ).all()
    times = incidents.response_times(incident)
    end = incident.resolved_at or now
    slo = slo_engine.by_id.get(incident.slo_id) if incident.slo_id else None
    budget = _budget(incident, slo)
    suspect = next((v for v in evidence["model_versions"] if v.role == "suspect"), None)
    responders = sorted({e.actor for e in timeline if e.actor and e.actor[:1] in ("U", "W")})
    detection = {"alertmanager": "an Alertmanager alert", "slo": "sloguard's burn-rate evaluation"}.get(
        incident.source, "a person (declared by hand)"
    )
    runbook = slo.runbook if slo else None
    return {
        "incident": incidents.as_dict(incident),
        "generated_at": _utc(now),
        "impact": _impact(incident),
        "times": {
            "started": _utc(incident.started_at),
            "detected": _utc(incident.detected_at),
            "resolved": _utc(incident.resolved_at),
        },
        "figures": {
            "duration": duration((end - incident.started_at).total_seconds()),
            **{key: duration(value) for key, value in times.items()},
        },
        "raw_times": times,
        "budget": budget,
        "detection": detection,
        "responders": responders,
        "suspect": {
            "version": suspect.version,
            "model": suspect.model,
            "reason": suspect.detail.get("reason", ""),
        }
        if suspect
        else None,
        "rollbacks": [
            {
                "kind": a.kind,
                "model": a.model,
                "environment": a.environment,
                "from_version": a.from_version,
                "to_version": a.to_version,
                "actor": a.actor,
                "approver": a.approver if a.approver != a.actor else None,
                "state": a.state,
                "created": _utc(a.created_at),
                "finished": _utc(a.finished_at),
                "verification": a.verification.get("text"),
            }
            for a in actions
        ],
        "timeline": [{"at": _utc(e.at), "kind": e.kind, "actor": e.actor, "text": e.text} for e in timeline],
        "versions": version_rows(evidence["model_versions"], None, end),
        "_version_links": evidence["model_versions"],
        "drift": drift_view.table_rows([d.model_dump() for d in evidence["drift_signals"]]),
        "logs": [
            {**item.model_dump(), "first_seen": _utc(item.first_seen), "last_seen": _utc(item.last_seen)}
            for item in evidence["log_evidence"]
        ],
        "action_items": [i.model_dump() for i in items],
        "runbook": runbook,
        "runbook_link": runbook_link(runbook),
        "alert_links": sorted({a.generator_url for a in alerts if a.generator_url}),
        "charts": [],
        "budget_by_version": None,
        "chart_problem": None,
        "_slo": slo,
    }


ROLE_NAMES = {
    "previous_good": "previous good",
    "rolled_back_to": "rolled back to",
    "promoted_to": "promoted to",
}


def version_rows(
    links: list[Any], table: list[VersionSeen] | None, until: datetime, model: str = ""
) -> list[dict[str, Any]]:
    """One row per version: every role the incident gave it, when it first and last served, and its error
    ratio. With `table` (read from the traffic when the draft is written: app/ml/service.version_table)
    the times and the ratio over the impact window are the data's; without it, the times the evidence
    saw when the incident opened, and no ratio."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for link in links:
        row = rows.setdefault(
            (link.model, link.version),
            {
                "model": link.model,
                "version": link.version,
                "roles": [],
                "first": None,
                "last": None,
                "ratio": None,
            },
        )
        role = ROLE_NAMES.get(link.role, link.role)
        if role not in row["roles"]:
            row["roles"].append(role)
        if link.role in ml.EVIDENCE_ROLES and link.first_seen is not None:
            row["first"] = min(filter(None, (row["first"], link.first_seen)))
            row["last"] = max(filter(None, (row["last"], link.last_seen)), default=None)
    if table is not None:
        for seen in table:
            row = rows.setdefault(
                (model, seen.version),
                {"model": model, "version": seen.version, "roles": ["serving"], "first": None, "last": None},
            )
            row["first"], row["last"], row["ratio"] = seen.first_seen, seen.last_seen, seen.error_ratio
            row["from_table"] = True
    # Still serving: it had traffic in the last step read (the range's points are a step apart, the
    # last one within a step of `until`); after a change sloguard made, only the version it moved to
    # (traffic steps cannot yet see a switch made seconds before the draft), and the one it moved
    # from served last at the change.
    recent = until - timedelta(seconds=ml.STEP)
    changes = [c for c in links if c.role in ml.CHANGE_ROLES and c.first_seen and c.first_seen <= until]
    change = max(changes, key=lambda c: c.first_seen, default=None)
    out = []
    for row in sorted(rows.values(), key=lambda r: (r["first"] or until, r["version"])):
        if change is not None and row["version"] != change.version and row["last"] is not None:
            row["last"] = min(row["last"], change.first_seen)
        still = bool(row.get("from_table")) and row["last"] is not None and row["last"] > recent
        if change is not None:
            still = row["version"] == change.version and row["model"] == change.model
        out.append(
            {
                "model": row["model"],
                "version": row["version"],
                "roles": ", ".join(row["roles"]),
                "first_seen": _utc(row["first"]),
                "last_seen": "still serving" if still else _utc(row["last"]),
                "error_ratio": f"{row['ratio']:.2%}" if row.get("ratio") is not None else None,
            }
        )
    return out


def budget_rows(figure: dict[str, Any]) -> dict[str, Any]:
    """The budget per version (app/ml/budget.py) as the draft's table shows it: figures as text."""

    def percent(value: object) -> str:
        return f"{value:.2%}".replace("%", " %") if isinstance(value, int | float) else "n/a"

    return {
        "available": bool(figure.get("available")),
        "reason": figure.get("reason") or "",
        "period": figure.get("period") or "",
        "at": figure.get("at") or "",
        "consumed": percent(figure.get("budget_consumed")),
        "unattributed": percent(figure.get("unattributed")) if figure.get("unattributed") else "",
        "rows": [
            {
                "version": v["version"],
                "spent": percent(v["spent"]),
                "bad": f"{v['bad_events']:.0f}",
                "total": f"{v['total_events']:.0f}",
                "first": v.get("first_served") or "",
                "last": v.get("last_served") or "",
                "served": duration(v["served_seconds"]) if v.get("served_seconds") is not None else "",
            }
            for v in figure.get("versions") or []
        ],
    }


def runbook_link(runbook: str | None) -> str | None:
    """Drafts live in postmortems/, runbooks are named from the repository root: `../runbooks/x.md`."""
    if not runbook:
        return None
    if urllib.parse.urlsplit(runbook).scheme or runbook.startswith(("/", "\\")):
        return runbook  # absolute: safe_url decides whether it is shown as a link
    return f"../{runbook}"


def environment(template_dir: Path | None) -> SandboxedEnvironment:
    folders = [str(template_dir)] if template_dir and template_dir.is_dir() else []
    env = SandboxedEnvironment(
        loader=FileSystemLoader([*folders, str(BUILTIN_TEMPLATES)]),
        autoescape=select_autoescape(default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["md"] = md
    env.filters["safe_url"] = safe_url
    return env


def merge_kept(new: str, old: str | None) -> str:
    """Put back what people wrote in kept sections of the previous draft."""
    if not old:
        return new
    kept = {name: body for name, body in KEEP.findall(old)}

    def restore(match: re.Match[str]) -> str:
        name = match.group(1)
        body = kept.get(name, match.group(2))
        return f"<!-- sloguard:keep {name} -->\n{body}<!-- sloguard:end -->"

    return KEEP.sub(restore, new)


def render(context: dict[str, Any], template_dir: Path | None) -> str:
    template = environment(template_dir).get_template("postmortem.md.j2")
    public = {key: value for key, value in context.items() if not key.startswith("_")}
    return template.render(**public)


def _serving_table(
    services: Services, context: dict[str, Any], incident: Incident, start: datetime, end: datetime
) -> None:
    """The versions table from the model's traffic between `start` and `end`, with each version's error
    ratio over the impact window (the evidence's figures stay when Prometheus does not answer)."""
    match = ml.model_for(incident, services.config.models)
    if match is None:
        return
    began, ended = incident.impact_started_at, incident.impact_ended_at
    window = (began, ended or end) if began else None
    try:
        table = ml.version_table(services.slo_engine.prometheus, match[1], start, end, window)
    except SourceError as exc:
        log.warning("versions table from the evidence only", extra={"error": str(exc)})
        return
    context["versions"] = version_rows(context["_version_links"], table, end, match[0])


def _name_people(services: Services, context: dict[str, Any], now: datetime) -> None:
    """People as `Display Name (U123)` wherever the draft names them (Slack's users.info, cached)."""
    from app.services import slack_client

    timeline, actions, incident = context["timeline"], context["rollbacks"], context["incident"]
    actors = [
        *context["responders"],
        *(event["actor"] for event in timeline),
        *(action["actor"] for action in actions),
        *(action["approver"] for action in actions),
        incident.get("commander"),
    ]
    known = people.names(services.engine, slack_client(services.settings), actors, now)
    if not known:
        return
    context["responders"] = [people.label(known, actor) for actor in context["responders"]]
    for row in (*timeline, *actions):
        row["actor"] = people.label(known, row["actor"])
    for action in actions:
        action["approver"] = people.label(known, action["approver"])
    context["incident"] = incident | {"commander": people.label(known, incident.get("commander"))}


def _draw_charts(
    services: Services, context: dict[str, Any], incident: Incident, slo: Slo, path: Path, now: datetime
) -> tuple[datetime, datetime]:
    """The error-ratio and budget charts over the incident's story (app/postmortems/charts.py), each
    with its series as CSV beside it, and the markers' times; returns the span they cover."""
    prometheus = services.slo_engine.prometheus
    with Session(services.engine) as session:
        timeline = incidents.timeline(session, incident.id or 0)
        actions = session.exec(select(RollbackAction).where(RollbackAction.incident_id == incident.id)).all()
    moments = charts.markers(incident, timeline, actions)
    start, end = charts.span(moments, incident.started_at, now, incident.resolved_at)
    impact = (incident.impact_started_at, incident.impact_ended_at) if incident.impact_started_at else None
    planned = planned_windows.overlaps(
        planned_windows.for_slo(services.config.planned_windows, slo.id, slo.service, slo.model), start, end
    )
    try:
        points = error_ratio_series(prometheus, slo, start, end)
        remaining = budget_series(prometheus, slo, start, end)
    except SourceError as exc:
        log.warning("chart data unavailable", extra={"error": str(exc)})
        context["chart_problem"] = f"Prometheus did not answer ({exc})"
        return start, end
    if not points and not remaining:
        return start, end
    assets = path.parent / f"{path.stem}-assets"
    assets.mkdir(exist_ok=True)
    (assets / "markers.csv").write_text(charts.markers_csv(moments), encoding="utf-8")
    if planned:
        (assets / "planned.csv").write_text(charts.spans_csv(planned), encoding="utf-8")
    window = series_window(slo, start, end)
    drawn = []
    if points:
        pages = [t for t in slo.tiers if t.severity == burn.State.page] or list(slo.tiers[:1])
        svg = charts.error_ratio_chart(
            points,
            title=f"{slo.id}: error ratio",
            window=window,
            allowed=slo.budget,
            thresholds=[
                charts.Threshold(f"{t.name} threshold (×{t.factor:g})", t.threshold(slo.budget))
                for t in pages
            ],
            moments=moments,
            impact=impact,
            bounds=(start, end),
            planned=planned,
        )
        drawn.append(
            ("error-ratio", f"{slo.id} error ratio over {window}", svg, f"error_ratio_{window}", points)
        )
    if remaining:
        period = durations.format_prometheus(slo.period_seconds)
        svg = charts.budget_chart(
            remaining,
            title=f"{slo.id}: error budget remaining",
            period=period,
            moments=moments,
            impact=impact,
            bounds=(start, end),
            planned=planned,
        )
        drawn.append(("budget", f"{slo.id} error budget remaining", svg, "budget_remaining", remaining))
    for name, title, svg, column, series in drawn:
        (assets / f"{name}.svg").write_text(svg, encoding="utf-8")
        (assets / f"{name}.csv").write_text(charts.csv_text(column, series, impact), encoding="utf-8")
        context["charts"].append(
            {"title": title, "path": f"{assets.name}/{name}.svg", "data": f"{assets.name}/{name}.csv"}
        )
    return start, end


def write(services: Services, incident_id: int, now: datetime, output: Path | None = None) -> Draft:
    """Render (and chart) the draft for an incident and write it, keeping people's edits."""
    settings, engine, slo_engine = services.settings, services.engine, services.slo_engine
    context = gather(engine, slo_engine, incident_id, now)
    _name_people(services, context, now)
    with Session(engine) as session:
        incident = incidents.get(session, incident_id)
    path = output or draft_path(settings.postmortem_dir, incident)
    path.parent.mkdir(parents=True, exist_ok=True)
    slo: Slo | None = context["_slo"]
    if slo is not None and slo_engine.prometheus is not None:
        start, end = _draw_charts(services, context, incident, slo, path, now)
        _serving_table(services, context, incident, start, end)
    if slo is not None:
        at = min(incident.resolved_at or now, now)
        spent = version_budget.for_slo(
            slo_engine.prometheus, slo, services.config.models, at, slo_engine.planned
        )
        context["budget_by_version"] = budget_rows(spent.as_dict())
    template_dir = settings.postmortem_dir / "templates"
    try:
        text = render(context, template_dir)
    except TemplateError as exc:  # the sandbox refused a team's template, or it does not parse
        log.warning("review template refused", extra={"error": f"{type(exc).__name__}: {exc}"})
        raise TemplateRefused(
            f"the review template in {template_dir} could not be used ({type(exc).__name__}); "
            "the sandbox allows only the draft's fields and filters — see the logs for the detail"
        ) from None
    old = path.read_text(encoding="utf-8") if path.exists() else None
    merged = merge_kept(text, old)
    path.write_text(merged, encoding="utf-8")
    return Draft(path, merged, context)


DRAFT = "postmortem.write"


def subscribe(dispatcher: Dispatcher) -> None:
    """Write the review draft when an incident is resolved: an outbox row in the unit that resolved it."""

    def resolved(session: Session, events: db.Events, event: IncidentStatusChanged) -> None:
        if event.new == "resolved":
            group = record.group(event.incident_id)  # after the impact is measured
            outbox.enqueue(session, DRAFT, group, incident_id=event.incident_id)

    dispatcher.subscribe(IncidentStatusChanged, resolved)


class Writer:
    """The outbox handler of `postmortem.write`. The file is written again on a retry (people's edits
    kept, as always); the timeline note is recorded with the row's delivery, once."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def handlers(self) -> dict[str, outbox.Handler]:
        return {DRAFT: self.deliver}

    def deliver(self, effect: outbox.Effect) -> outbox.Completion:
        assert effect.incident_id is not None
        incident_id = effect.incident_id
        now = datetime.now(UTC)
        draft = write(self.services, incident_id, now)

        def record(session: Session, events: db.Events) -> None:
            incident = incidents.get(session, incident_id)
            incidents.note(
                session,
                incident,
                "postmortem",
                f"review draft written: {draft.path}",
                actor="sloguard",
                at=now,
            )

        return record
