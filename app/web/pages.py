"""The console's pages: SLOs at a glance, one SLO, incidents, one incident (its timeline polled), and
its review draft. Every page needs a signed-in viewer (app/web/auth.py); none of them writes anything.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from app import durations
from app.api import IdPath, ServicesDep
from app.errors import NotFound, SourceError
from app.identity.logic import Scope
from app.incidents import service as incidents
from app.incidents.models import IncidentStatus, Severity
from app.ml import budget, drift_view, traffic
from app.ml import service as ml
from app.postmortems import charts, html
from app.postmortems import service as postmortems
from app.rollback import service as rollbacks
from app.rollback.models import RollbackAction
from app.slo import rules
from app.slo import service as slos
from app.slo.burn import State
from app.slo.model import Slo
from app.web import views
from app.web.auth import PAGE_HEADERS, ViewerDep
from app.web.render import STATIC, render
from app.web.sessions import Viewer

__all__ = ["STATIC", "router"]
log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
INCIDENTS_PER_PAGE = 50
Text = Annotated[str | None, Query(max_length=200)]
PageNumber = Annotated[int, Query(ge=1, le=100_000)]


# What a form's redirect may announce (`?done=CODE`): fixed texts, so a link cannot put words on the page.
DONE = {
    "acknowledged": "Acknowledged.",
    "resolved": "Resolved. The review draft is being written.",
    "noted": "Note added.",
    "proposed": "Rollback proposed. It runs once confirmed (by a second person where two_person is set).",
    "confirmed": "Rollback confirmed. Its state and verification follow below.",
}


def common(request: Request, who: Viewer, nav: str) -> dict[str, Any]:
    done = DONE.get(request.query_params.get("done") or "")
    return {
        "viewer": who,
        "nav": nav,
        "may_respond": who.may(Scope.respond),
        "may_change": who.may(Scope.change),
        "flashes": [done] if done else [],
    }


def _or_none(value: str | None) -> str | None:
    return value.strip() or None if value else None


def _source_health(request: Request) -> list[dict[str, Any]]:
    readiness = getattr(request.app.state, "readiness", None)
    if readiness is None:
        return []
    found = []
    for name, check in readiness.sources.results().items():
        shown = check.as_dict() if check is not None else {"state": "unknown", "detail": "not checked yet"}
        found.append({"name": name, **shown})
    return found


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    services: ServicesDep,
    who: ViewerDep,
    service: Text = None,
    model: Text = None,
    state: Text = None,
    page: PageNumber = 1,
) -> Response:
    now = datetime.now(UTC)
    chosen = {"service": _or_none(service), "model": _or_none(model), "state": _or_none(state)}
    with Session(services.engine) as session:
        found = views.overview(
            session,
            services.slo_engine.slos,
            now=now,
            page=page,
            service=chosen["service"],
            model=chosen["model"],
            state=chosen["state"],
        )
        open_now = views.open_incidents(session)
    return render(
        request,
        "overview.html",
        {
            **common(request, who, "overview"),
            "found": found,
            "chosen": chosen,
            "states": views.STATES,
            "spark": views.sparkline_points,
            "open_incidents": open_now,
            "sources": _source_health(request),
            "now": now,
        },
    )


def _slo(services: Any, slo_id: str) -> Slo:
    spec: Slo | None = services.slo_engine.by_id.get(slo_id)
    if spec is None:
        raise NotFound(f"no SLO {slo_id!r}")
    return spec


def _tiers(spec: Slo, windows: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for tier in spec.tiers:
        shown = []
        for window in (tier.short, tier.long):
            figures = windows.get(window.name) or {}
            rate = figures.get("burn_rate")
            shown.append(
                {
                    "name": window.name,
                    "burn": rate,
                    "error_ratio": figures.get("error_ratio"),
                    "above": rate is not None and rate > tier.factor,
                }
            )
        rows.append(
            {
                "name": tier.name,
                "severity": tier.severity.value,
                "factor": tier.factor,
                "threshold": tier.threshold(spec.budget),
                "windows": shown,
                "firing": all(w["above"] for w in shown),
            }
        )
    return rows


def _slo_charts(services: Any, spec: Slo, now: datetime) -> tuple[list[dict[str, str]], str | None]:
    """The error ratio over the last day and the budget over the period, from Prometheus; for a log-based
    SLI the budget from sloguard's own evaluations (kept `status_retention`)."""
    drawn: list[dict[str, str]] = []
    bounds_day = (now - timedelta(days=1), now)
    period = durations.format_prometheus(spec.period_seconds)
    prometheus = services.slo_engine.prometheus
    try:
        if spec.prometheus_sli is not None and prometheus is not None:
            points = postmortems.error_ratio_series(prometheus, spec, *bounds_day)
            pages = [t for t in spec.tiers if t.severity == State.page] or list(spec.tiers[:1])
            if points:
                svg = charts.error_ratio_chart(
                    points,
                    title=f"{spec.id}: error ratio, last 24 h",
                    window=postmortems.series_window(spec, *bounds_day),
                    allowed=spec.budget,
                    thresholds=[
                        charts.Threshold(f"{t.name} threshold (×{t.factor:g})", t.threshold(spec.budget))
                        for t in pages
                    ],
                    moments=[],
                    impact=None,
                    bounds=bounds_day,
                )
                drawn.append({"title": "Error ratio, last 24 h", "svg": svg})
            bounds_period = (now - timedelta(seconds=spec.period_seconds), now)
            remaining = postmortems.budget_series(prometheus, spec, *bounds_period)
            if remaining:
                svg = charts.budget_chart(
                    remaining,
                    title=f"{spec.id}: error budget remaining over the {period} period",
                    period=period,
                    moments=[],
                    impact=None,
                    bounds=bounds_period,
                )
                drawn.append({"title": f"Error budget remaining, over {period}", "svg": svg})
    except SourceError as exc:
        return drawn, f"Prometheus did not answer: {exc}"
    return drawn, None


def _stored_budget_chart(services: Any, spec: Slo, now: datetime) -> dict[str, str] | None:
    since = now - timedelta(seconds=services.slo_engine.options.status_retention)
    with Session(services.engine) as session:
        history = views.status_history(session, spec.id, since)
    points: postmortems.Points = [(row.evaluated_at, row.budget_remaining) for row in history]
    if not any(value is not None for _, value in points):
        return None
    svg = charts.budget_chart(
        points,
        title=f"{spec.id}: error budget remaining (sloguard's evaluations)",
        period=durations.format_prometheus(spec.period_seconds),
        moments=[],
        impact=None,
        bounds=(points[0][0], now),
    )
    return {"title": "Error budget remaining, as sloguard evaluated it", "svg": svg}


def _versions(services: Any, spec: Slo, now: datetime) -> tuple[list[traffic.VersionTraffic], str | None]:
    linked = traffic.model_of_slo(spec.id, spec.model, services.config.models)
    prometheus = services.slo_engine.prometheus
    if linked is None or prometheus is None:
        return [], None
    try:
        return traffic.by_version(prometheus, linked[1], 86400, now), linked[0]
    except SourceError as exc:
        log.warning("per-version traffic unavailable", extra={"slo": spec.id, "error": str(exc)})
        return [], linked[0]


@router.get("/slos/{slo_id}", response_class=HTMLResponse)
def slo_page(request: Request, services: ServicesDep, who: ViewerDep, slo_id: str) -> Response:
    spec = _slo(services, slo_id[:300])
    now = datetime.now(UTC)
    with Session(services.engine) as session:
        (status,) = slos.latest_status(session, [spec])
        on_this = incidents.list_incidents(session, slo_id=spec.id, limit=50)
    drawn, problem = _slo_charts(services, spec, now)
    if spec.prometheus_sli is None:
        stored = _stored_budget_chart(services, spec, now)
        drawn += [stored] if stored else []
    versions, model = _versions(services, spec, now)
    spent = services.budgets.get(
        spec.id,
        lambda: budget.for_slo(
            services.slo_engine.prometheus, spec, services.config.models, now, services.config.planned_windows
        ),
    )
    return render(
        request,
        "slo.html",
        {
            **common(request, who, "overview"),
            "spec": spec,
            "status": status,
            "tiers": _tiers(spec, status.get("windows") or {}),
            "charts": drawn,
            "chart_problem": problem,
            "incidents": on_this,
            "rules": rules.render([spec]),
            "source_text": _spec_text(spec),
            "versions": versions,
            "model": model,
            "period": durations.format_prometheus(spec.period_seconds),
            "budget_by_version": spent.as_dict(),
        },
    )


def _spec_text(spec: Slo) -> str | None:
    from pathlib import Path

    try:
        path = Path(spec.source)
        return path.read_text(encoding="utf-8")[:100_000] if path.is_file() else None
    except (OSError, ValueError):
        return None


RUNBOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.md")


@router.get("/runbooks/{name}", response_class=HTMLResponse)
def runbook_page(request: Request, services: ServicesDep, who: ViewerDep, name: str) -> Response:
    """A runbook from SLOGUARD_RUNBOOK_DIR, by its file name: where the alert rules' runbook_url points
    when `slo rules` ran with SLOGUARD_PUBLIC_URL set (app/slo/rules.runbook_links)."""
    folder = services.settings.runbook_dir
    path = folder / name
    if RUNBOOK_NAME.fullmatch(name) is None or not path.is_file():
        raise NotFound(f"no runbook {name[:100]!r}")
    text = path.read_text(encoding="utf-8", errors="replace")[:200_000]  # not UTF-8: shown, not a 500
    if text.startswith("---\n"):  # the front matter (slos, alerts, models) is for `runbooks lint`
        text = text[4:].partition("\n---")[2].lstrip("-\n")
    return render(
        request,
        "runbook.html",
        {**common(request, who, "overview"), "name": name, "body": html.body(text)},
    )


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(
    request: Request,
    services: ServicesDep,
    who: ViewerDep,
    status: IncidentStatus | None = None,
    severity: Severity | None = None,
    service: Text = None,
    model: Text = None,
    page: PageNumber = 1,
) -> Response:
    filters = {"status": status, "severity": severity, "service": _or_none(service), "model": _or_none(model)}
    with Session(services.engine) as session:
        total = incidents.count_incidents(session, **filters)
        pages = max(1, -(-total // INCIDENTS_PER_PAGE))
        page = min(page, pages)
        rows = incidents.list_incidents(
            session, limit=INCIDENTS_PER_PAGE, offset=(page - 1) * INCIDENTS_PER_PAGE, **filters
        )
    return render(
        request,
        "incidents.html",
        {
            **common(request, who, "incidents"),
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "chosen": {k: str(v) if v is not None else None for k, v in filters.items()},
            "statuses": [s.value for s in IncidentStatus],
            "severities": [s.value for s in Severity],
        },
    )


def _incident_context(services: Any, incident_id: int) -> dict[str, Any]:
    with Session(services.engine) as session:
        incident = incidents.get(session, incident_id)
        timeline = list(incidents.timeline(session, incident_id))
        evidence = ml.evidence(session, incident_id)
        actions = session.exec(
            select(RollbackAction)
            .where(RollbackAction.incident_id == incident_id)
            .order_by(col(RollbackAction.id))
        ).all()
        trails = [(action, rollbacks.audit_trail(session, action.id or 0)) for action in actions]
        spent = ml.budget_of(session, incident) if incident.slo_id else None
    versions = evidence.get("model_versions", [])
    suspect = next((v for v in versions if v.role == "suspect"), None)
    previous = next((v for v in versions if v.role == "previous_good"), None)
    rollback_to = previous.version if previous is not None else None
    # Once a change has gone through, the form is offered again only while the suspect serves anew.
    changed = [a for a in actions if a.state in ("succeeded", "verified", "not_recovered")]
    serving_now = changed[-1].to_version if changed else None
    pending = any(a.state in ("proposed", "confirmed", "executing") for a in actions)
    return {
        "offer_rollback": not pending
        and (serving_now is None or (suspect is not None and serving_now == suspect.version)),
        "incident": incident,
        "timeline": timeline,
        "versions": versions,
        "drift": drift_view.table_rows([signal.model_dump() for signal in evidence.get("drift_signals", [])]),
        "logs": evidence.get("log_evidence", []),
        "suspect": suspect,
        "previous_good": previous,
        "rollback_to": rollback_to,
        "trails": trails,
        "times": incidents.response_times(incident),
        "closed": incident.status in (IncidentStatus.resolved, IncidentStatus.cancelled),
        "draft": _draft_file(services, incident),
        "budget_by_version": spent,
    }


def _draft_file(services: Any, incident: Any) -> Any:
    path = postmortems.draft_path(services.settings.postmortem_dir, incident)
    return path if path.is_file() else None


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, services: ServicesDep, who: ViewerDep, incident_id: IdPath) -> Response:
    found = _incident_context(services, incident_id)
    return render(request, "incident.html", {**common(request, who, "incidents"), **found})


@router.get("/incidents/{incident_id}/timeline", response_class=HTMLResponse)
def timeline_fragment(
    request: Request, services: ServicesDep, who: ViewerDep, incident_id: IdPath
) -> Response:
    """The timeline and status block alone: what the incident page polls (any replica answers it)."""
    found = _incident_context(services, incident_id)
    return render(request, "incident_live.html", {**common(request, who, "incidents"), **found})


@router.get("/incidents/{incident_id}/draft", response_class=HTMLResponse)
def draft_page(request: Request, services: ServicesDep, who: ViewerDep, incident_id: IdPath) -> Response:
    with Session(services.engine) as session:
        incident = incidents.get(session, incident_id)
    path = _draft_file(services, incident)
    body = None
    if path is not None:
        body = html.body(path.read_text(encoding="utf-8"), path.parent)
    return render(
        request,
        "draft.html",
        {**common(request, who, "incidents"), "incident": incident, "body": body, "path": path},
    )


@router.get("/incidents/{incident_id}/draft.md")
def draft_markdown(services: ServicesDep, who: ViewerDep, incident_id: IdPath) -> Response:
    path = _existing_draft(services, incident_id)
    return Response(
        path.read_bytes(),
        media_type="text/markdown; charset=utf-8",
        headers={**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{path.name}"'},
    )


@router.get("/incidents/{incident_id}/draft.zip")
def draft_zip(services: ServicesDep, who: ViewerDep, incident_id: IdPath) -> Response:
    """The draft and its assets folder (charts as SVG, their series as CSV), as one zip."""
    path = _existing_draft(services, incident_id)
    assets = path.parent / f"{path.stem}-assets"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, path.name)
        if assets.is_dir():
            for item in sorted(assets.iterdir()):
                if item.is_file() and not item.is_symlink():
                    archive.write(item, f"{assets.name}/{item.name}")
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="{path.stem}.zip"'},
    )


def _existing_draft(services: Any, incident_id: int) -> Any:
    with Session(services.engine) as session:
        incident = incidents.get(session, incident_id)
    path = _draft_file(services, incident)
    if path is None:
        raise NotFound(f"incident {incident_id} has no review draft yet")
    return path
