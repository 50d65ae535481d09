"""Runbooks: Markdown files in runbooks/ with a small front matter (slos, alerts, models), and the lint
that every SLO and every generated alert points at one that exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.slo.model import Slo


def front_matter(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    block, _, _ = text[4:].partition("\n---")
    loaded = yaml.safe_load(block) or {}
    return loaded if isinstance(loaded, dict) else {}


def resolve(reference: str, runbook_dir: Path) -> Path | None:
    """A runbook reference (`runbooks/x.md`, `x.md`) as a local file, or None for a URL."""
    if reference.startswith(("http://", "https://")):
        return None
    candidate = Path(reference)
    if candidate.exists():
        return candidate
    return runbook_dir / candidate.name


def lint(slos: list[Slo], runbook_dir: Path) -> list[str]:
    """Problems as `file: field: reason`; empty when every SLO and alert has an existing runbook."""
    problems = []
    known_ids = {slo.id for slo in slos}
    for slo in slos:
        references = {
            "annotations": slo.runbook,
            "page_alert.annotations": slo.alerting.page_annotations.get("runbook_url"),
            "ticket_alert.annotations": slo.alerting.ticket_annotations.get("runbook_url"),
        }
        if not slo.runbook:
            problems.append(f"{slo.source}: {slo.id}: no runbook (set the runbook_url annotation)")
            continue
        for where, reference in references.items():
            if not reference:
                continue
            path = resolve(reference, runbook_dir)
            if path is not None and not path.exists():
                problems.append(f"{slo.source}: {slo.id}: {where}.runbook_url: {reference} does not exist")
    if runbook_dir.is_dir():
        for path in sorted(runbook_dir.glob("*.md")):
            try:
                listed = front_matter(path).get("slos", [])
            except yaml.YAMLError as exc:
                problems.append(f"{path}: front matter: not valid YAML ({exc})")
                continue
            for slo_id in listed if isinstance(listed, list) else []:
                if slo_id not in known_ids:
                    problems.append(f"{path}: slos: no SLO {slo_id!r}")
    return problems
