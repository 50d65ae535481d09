"""Drift statistics against values computed by hand or by scipy directly on known samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.ml import drift, drift_view


def test_psi_of_identical_samples_is_zero() -> None:
    sample = list(range(100))
    assert drift.psi(sample, sample) == pytest.approx(0.0)


def test_psi_when_everything_moves_into_one_bin() -> None:
    reference = list(range(100))  # ten deciles of 10 % each
    current = [0.5] * 50  # all in the first decile
    # Sum over bins of (a - e) · ln(a / e): one bin has a = 1, e = 0.1; nine have a = 1e-4 (empty), e = 0.1.
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert drift.psi(reference, current) == pytest.approx(expected)
    assert expected == pytest.approx(8.2831, abs=1e-4)


def test_psi_half_shift() -> None:
    reference = list(range(100))
    current = list(range(50, 100)) * 2  # the upper five deciles hold everything, 20 % each
    expected = 5 * (0.2 - 0.1) * math.log(0.2 / 0.1) + 5 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert drift.psi(reference, current) == pytest.approx(expected)


def test_ks_matches_scipy_on_known_samples() -> None:
    reference = [1.0, 2.0, 3.0, 4.0, 5.0]
    current = [6.0, 7.0, 8.0, 9.0, 10.0]
    statistic, p_value = drift.ks(reference, current)
    assert statistic == 1.0  # the empirical CDFs never overlap
    assert p_value == pytest.approx(stats.ks_2samp(reference, current).pvalue)
    assert p_value == pytest.approx(2 / math.comb(10, 5))  # exact two-sided p: 2 / C(10, 5)


def test_wasserstein_normalised_by_the_reference_spread() -> None:
    reference = [0.0, 1.0, 2.0, 3.0, 4.0]
    shifted = [x + 1 for x in reference]
    # Moving every point by 1 costs 1; the reference's population std is sqrt(2).
    assert drift.wasserstein(reference, shifted) == pytest.approx(1 / math.sqrt(2))


def test_bonferroni_over_features_and_methods() -> None:
    rng = np.random.default_rng(0)
    same = rng.normal(0, 1, 400)
    moved = rng.normal(0.15, 1, 400)
    # scipy directly: p is about 0.03; each of three methods on one feature is tested at 0.05 / 3, on
    # three features at 0.05 / 9: significant in neither case.
    p_value = stats.ks_2samp(same, moved).pvalue
    assert 0.05 / 3 < p_value < 0.05
    for features, level in ((1, 0.05 / 3), (3, 0.05 / 9)):
        samples = {"a": (same, moved), "b": (same, same), "c": (same, same)}
        signals = drift.compare(dict(list(samples.items())[:features]))
        ks_a = next(s for s in signals if s.feature == "a" and s.method == "ks")
        assert ks_a.p_value == pytest.approx(p_value, rel=0.1)  # the Kolmogorov approximation
        assert not ks_a.drifted
        # The threshold shown is the D whose p-value is the corrected level, by scipy's own distribution.
        root = math.sqrt(400 * 400 / 800)
        assert stats.kstwobign.sf(ks_a.threshold * (root + 0.12 + 0.11 / root)) == pytest.approx(
            level, rel=1e-6
        )
    # A larger move is significant at 0.05 / 9, and the threshold sits below its D.
    far = rng.normal(0.4, 1, 400)
    ks = next(
        s
        for s in drift.compare({"a": (same, far), "b": (same, same), "c": (same, same)})
        if s.method == "ks" and s.feature == "a"
    )
    assert ks.drifted and ks.score > ks.threshold and ks.p_value is not None and ks.p_value < 0.05 / 9


def test_only_the_shifted_feature_drifts_and_ranks_first() -> None:
    rng = np.random.default_rng(11)
    reference = {name: rng.normal(0, 1, 2000) for name in ("amount", "age", "merchant_risk")}
    current = {name: rng.normal(0, 1, 2000) for name in ("age", "merchant_risk")}
    current["amount"] = rng.normal(3, 1, 2000)
    signals = drift.compare({name: (reference[name], current[name]) for name in reference})
    assert drift_view.ranked(signals) == ["amount"]
    assert {s.method for s in signals if s.feature == "amount" and s.drifted} == {"psi", "ks", "wasserstein"}
    assert not drift_view.dataset_drifted(signals)  # one of three features is not more than half


def test_every_door_ranks_drifted_features_by_effect_over_its_method_minimum() -> None:
    # Effects over each method's minimum (psi 0.02, wasserstein 0.05, chi2 0.05) rank by hand:
    # age 0.3 / 0.02 = 15x, amount 0.5 / 0.05 = 10x, card 0.1 / 0.05 = 2x. By raw effect amount
    # (0.5) would come first and age second.
    def row(feature: str, method: str, effect: float, drifted: bool, **extra: object) -> dict[str, object]:
        return {
            "feature": feature,
            "method": method,
            "score": effect,
            "effect": effect,
            "threshold": 0.01,
            "p_value": 0.0001 if drifted else 0.5,
            "n": 500,
            "drifted": drifted,
            "state": "drifted" if drifted else "ok",
            "kind": "categorical" if feature == "card" else "numeric",
        } | extra

    signals = [
        row("amount", "wasserstein", 0.5, True),
        row("amount", "psi", 0.01, False),
        row("card", "chi2", 0.1, True, detail={"unseen": [["crypto", 80]], "unseen_share": 0.16}),
        row("age", "psi", 0.3, True),
        row("age", "ks", 0.2, True),
        row("hour", "psi", 0.9, False),  # a large statistic that is not significant is no drift
    ]
    order = ["age", "amount", "card"]
    features = [line.split(":")[0] for line in drift_view.describe(signals)]
    assert features == order
    table = [r["feature"] for r in drift_view.table_rows(signals)]
    assert table == ["age", "age", "amount", "amount", "card", "hour"]
    # Within a feature, its strongest drifted method first: age's PSI (15x) before its KS (0.2/0.03 = 6.7x).
    assert [r["method"] for r in drift_view.table_rows(signals)][:2] == ["psi", "ks"]
    card = next(line for line in drift_view.describe(signals) if line.startswith("card"))
    assert "new: crypto (80)" in card
    assert drift_view.table_rows(signals)[4]["judgement"] == "drifted; new: crypto (80)"
