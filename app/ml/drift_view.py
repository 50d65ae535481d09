"""How drift signals are shown, the same at every door (API, Slack, console, review draft): which features
drifted, the largest effect first, with the statistic, the threshold calibrated at the window's size,
the p-value and n; too little data said as such; the model server's own gauges said to be its own.
The statistics themselves are app/ml/drift.py."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from app.ml.drift import INSUFFICIENT, MIN_EFFECT, FeatureDrift

T = TypeVar("T")


def strength(signal: Mapping[str, Any]) -> float:
    """How far past its method's minimum a signal's effect is (so methods compare); a model server's gauge
    against its own threshold."""
    method = signal.get("method") or ""
    if method == "gauge":
        threshold = signal.get("threshold") or 0.0
        return float(signal.get("score") or 0.0) / threshold if threshold > 0 else 0.0
    effect = signal.get("effect")
    effect = signal.get("score") if effect is None else effect  # a row from before calibration
    value = float(effect or 0.0)
    return (value if math.isfinite(value) else 0.0) / MIN_EFFECT.get(method, 1.0)


def ordered(signals: Sequence[T], read: Callable[[T], Mapping[str, Any]]) -> list[T]:
    """Signals as a responder reads them, the same everywhere (API, Slack, console, draft): the features
    that drifted first, the largest effect first, each feature's signals together, drifted then strongest
    first; then the features that did not drift, by name. `read` gives a signal's fields."""
    rows = [(item, read(item)) for item in signals]
    best: dict[str, float] = {}
    for _, row in rows:
        if row.get("drifted"):
            best[row["feature"]] = max(best.get(row["feature"], 0.0), strength(row))

    def key(pair: tuple[T, Mapping[str, Any]]) -> tuple[bool, float, str, bool, float]:
        row = pair[1]
        feature = row["feature"]
        return (feature not in best, -best.get(feature, 0.0), feature, not row.get("drifted"), -strength(row))

    return [item for item, _ in sorted(rows, key=key)]


def ordered_rows(signals: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`ordered` for signals that are already dicts."""
    return ordered(signals, lambda row: row)


def ranked(signals: Sequence[FeatureDrift]) -> list[str]:
    """Features that drifted, the largest effect first (see `ordered`)."""
    found: list[str] = []
    for signal in ordered_rows([asdict(s) for s in signals]):
        if signal["drifted"] and signal["feature"] not in found:
            found.append(signal["feature"])
    return found


def dataset_drifted(signals: Sequence[FeatureDrift]) -> bool:
    """More than half of the features judged (not insufficient_data) drifted."""
    judged = {s.feature for s in signals if s.state != INSUFFICIENT}
    return bool(judged) and len({s.feature for s in signals if s.drifted}) * 2 > len(judged)


METHOD_NAMES = {
    "psi": "PSI",
    "wasserstein": "Wasserstein (σ)",
    "ks": "KS D",
    "chi2": "chi-square",
    "gauge": "model server's own score",
}


def _number(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "p < 0.001" if value < 0.001 else f"p {value:.3f}"


def describe(signals: Sequence[Mapping[str, Any]]) -> list[str]:
    """What a responder reads, most drifted first: each drifted feature with its strongest method's
    statistic, the threshold calibrated at its window's size, the p-value and n; the features with too
    few values to judge; the model server's own gauges, said to be its own. `signals` are the stored
    drift signals as dicts (app/ml/models.DriftSignalRead)."""

    best: dict[str, Mapping[str, Any]] = {}
    for signal in ordered_rows([s for s in signals if s.get("method") != "gauge"]):
        if signal["drifted"] and signal["feature"] not in best:
            best[signal["feature"]] = signal  # its strongest drifted method
    lines = []
    for s in best.values():
        figures = [_p(s.get("p_value")), f"n {s['n']}" if s.get("n") is not None else ""]
        new = (s.get("detail") or {}).get("unseen") or []
        if new:
            figures.append("new: " + ", ".join(f"{name} ({count})" for name, count in new))
        detail = ", ".join(part for part in figures if part)
        lines.append(
            f"{s['feature']}: {METHOD_NAMES.get(s.get('method', ''), s.get('method', '?'))} "
            f"{_number(s.get('score'))} > {_number(s.get('threshold'))}" + (f" ({detail})" if detail else "")
        )
    thin = sorted({s["feature"]: s.get("n") for s in signals if s.get("state") == INSUFFICIENT}.items())
    lines += [f"{feature}: too few values to judge ({n})" for feature, n in thin if feature not in best]
    gauges = [s for s in signals if s.get("method") == "gauge" and s["drifted"]]
    lines += [
        f"{s['feature']}: {_number(s.get('score'))} by the model server's own score "
        f"(threshold {_number(s.get('threshold'))})"
        for s in sorted(gauges, key=lambda s: -(s.get("score") or 0.0))
    ]
    return lines


JUDGEMENTS = {"insufficient_data": "too few values"}


def new_categories(signal: dict[str, Any]) -> str:
    """'; new: crypto (80)' for categories the reference never held, else ''."""
    unseen = (signal.get("detail") or {}).get("unseen") or []
    return "; new: " + ", ".join(f"{name} ({count})" for name, count in unseen) if unseen else ""


def table_rows(signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The drift table in the order every door shows (`ordered`); figures to three digits."""

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.3g}"

    rows = []
    for signal in ordered(signals, dict):
        state = signal.get("state") or ("drifted" if signal["drifted"] else "ok")
        p_value = signal.get("p_value")
        rows.append(
            signal
            | {
                "kind": signal.get("kind") or ("server's own" if signal["method"] == "gauge" else ""),
                "score": number(signal.get("score")),
                "threshold": number(signal.get("threshold")),
                "p_value": "" if p_value is None else ("< 0.001" if p_value < 0.001 else f"{p_value:.3f}"),
                "n": "" if signal.get("n") is None else str(signal["n"]),
                "judgement": JUDGEMENTS.get(state, state) + new_categories(signal),
            }
        )
    return rows
