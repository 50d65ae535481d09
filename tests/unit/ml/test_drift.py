"""Drift statistics against values computed by hand or by scipy directly on known samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.ml import drift


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
    assert drift.ranked(signals) == ["amount"]
    assert {s.method for s in signals if s.feature == "amount" and s.drifted} == {"psi", "ks", "wasserstein"}
    assert not drift.dataset_drifted(signals)  # one of three features is not more than half
