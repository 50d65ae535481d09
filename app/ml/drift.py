"""Drift statistics between a reference sample and the incident-window sample of one feature.

Thresholds follow SLO-MATH.md: PSI >= 0.1 drift (>= 0.25 major); two-sample KS p < alpha after a
Bonferroni correction over the features compared; Wasserstein distance normalised by the reference's
standard deviation >= 0.1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4  # stands in for an empty bin so PSI stays finite


def psi(reference: Sequence[float], current: Sequence[float], bins: int = 10) -> float:
    """Population stability index over `bins` quantile bins of the reference.

    PSI = sum((a_i - e_i) · ln(a_i / e_i)) where e_i and a_i are the reference and current shares of
    bin i; empty bins count as EPSILON.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.all(cur == ref[0]) else float("inf")
    inner = edges[1:-1]
    expected = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(edges) - 1) / len(ref)
    actual = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=len(edges) - 1) / len(cur)
    expected = np.where(expected == 0, EPSILON, expected)
    actual = np.where(actual == 0, EPSILON, actual)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value."""
    from scipy import stats  # imported on first use: scipy costs ~60 MiB that most processes never need

    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def wasserstein(reference: Sequence[float], current: Sequence[float]) -> float:
    """Earth mover's distance divided by the reference's standard deviation (scale-free)."""
    spread = float(np.std(reference))
    from scipy import stats

    distance = float(stats.wasserstein_distance(reference, current))
    if spread == 0:
        return 0.0 if distance == 0 else float("inf")
    return distance / spread


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool
    p_value: float | None = None


def compare(
    samples: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    psi_warn: float = 0.1,
    ks_alpha: float = 0.05,
    wasserstein_threshold: float = 0.1,
) -> list[FeatureDrift]:
    """Every method for every feature; KS uses alpha / number of features (Bonferroni)."""
    results = []
    corrected = ks_alpha / max(1, len(samples))
    for feature, (reference, current) in sorted(samples.items()):
        if len(reference) < 2 or len(current) < 2:
            continue
        score = psi(reference, current)
        results.append(FeatureDrift(feature, "psi", score, psi_warn, score >= psi_warn))
        statistic, p_value = ks(reference, current)
        results.append(FeatureDrift(feature, "ks", statistic, corrected, p_value < corrected, p_value))
        distance = wasserstein(reference, current)
        results.append(
            FeatureDrift(
                feature, "wasserstein", distance, wasserstein_threshold, distance >= wasserstein_threshold
            )
        )
    return results


def ranked(signals: Sequence[FeatureDrift]) -> list[str]:
    """Features that drifted, most drifted first (by PSI, the one score comparable across features)."""
    drifted = {s.feature for s in signals if s.drifted}
    by_psi = {s.feature: s.score for s in signals if s.method == "psi"}
    return sorted(drifted, key=lambda feature: -by_psi.get(feature, 0.0))


def dataset_drifted(signals: Sequence[FeatureDrift]) -> bool:
    """More than half of the features compared drifted."""
    features = {s.feature for s in signals}
    return bool(features) and len({s.feature for s in signals if s.drifted}) * 2 > len(features)
