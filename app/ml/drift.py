"""Drift evidence calibrated to sample size, for numeric and categorical features.

A fixed threshold (PSI >= 0.1, say) is a noise detector on a small window: 50 values drawn from the
reference's own distribution cross it most of the time. So every decision here is calibrated on the
reference itself (docs/slo-math.md, "Drift"):

- The statistic between the current window (n values) and the reference (m values) is compared with its
  distribution under "no drift": the statistic between the reference and `DRAWS` random samples drawn from
  the reference. Those samples are drawn at the effective size n·m/(n+m), since the current window and the
  reference each carry their own noise. The share of null statistics at least as large is the p-value
  (plus one in numerator and denominator); the (1 - alpha) quantile is the threshold reported.
- alpha is Bonferroni-corrected over the features compared.
- Drifted means significant **and** an effect size above a minimum (`min_effect`), so that a huge window
  does not flag a trivial shift. Below `min_sample` values a feature is `insufficient_data`.

Methods. Numeric: PSI over ten quantile bins of the reference, Wasserstein-1 normalised by the
reference's standard deviation (on a grid of 100 reference quantiles, the same grid for the null), and the
two-sample Kolmogorov-Smirnov test (the Kolmogorov distribution at the effective size with Stephens'
correction, conservative under ties). Categorical: a chi-square statistic and PSI over the categories;
categories the reference never saw are one bin of their own, expected at the reference's Good-Turing
missing mass (the share of its values seen once), unless what is left of the rare known ones is too
thin to tell apart (then they are one tail bin); either way they are named in the signal. All
binned statistics have a multinomial null (counts drawn with the reference's shares), so calibrating costs
the same whatever n is; calibrations are cached per reference, method and size bucket.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

EPSILON = 1e-4  # stands in for an empty bin so PSI stays finite
BINS = 10
GRID = 100  # reference quantiles the Wasserstein statistic is integrated on
MIN_SAMPLE = 30
MIN_EFFECT = {"psi": 0.02, "wasserstein": 0.05, "ks": 0.03, "chi2": 0.05}
MAX_CATEGORIES = 200  # bins compared for a categorical feature; the rarest beyond are pooled
UNSEEN_NAMED = 5  # new categories named in a signal, the most frequent first
MIN_DRAWS, MAX_DRAWS = 4000, 20_000
BUCKET = 1.05  # effective sizes within 5 % share one calibration
CACHE_SIZE = 1024  # null distributions (draws floats each: 80 KB at most)
DRIFTED, OK, INSUFFICIENT = "drifted", "ok", "insufficient_data"
T = TypeVar("T")
Value = float | str
Numbers = Sequence[float] | np.ndarray
Values = Sequence[Value] | np.ndarray


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str  # psi, wasserstein, ks (numeric); chi2, psi (categorical)
    score: float  # the statistic (its effect size: PSI, normalised W1, KS D, or total variation for chi2)
    threshold: float  # the calibrated critical value at this n (the (1 - alpha) null quantile)
    drifted: bool
    p_value: float | None = None
    n: int = 0  # values in the current window
    state: str = OK  # drifted, ok or insufficient_data
    effect: float | None = None  # the effect size compared with min_effect
    kind: str = "numeric"  # numeric or categorical
    unseen: tuple[tuple[str, int], ...] = ()  # categories the reference never held: (name, count), top few
    unseen_share: float = 0.0  # their share of the window


@dataclass(frozen=True)
class _Null:
    statistics: np.ndarray  # sorted null statistics
    quantiles: dict[float, float] = field(default_factory=dict)

    def p_value(self, observed: float) -> float:
        above = len(self.statistics) - int(np.searchsorted(self.statistics, observed, side="left"))
        return (1 + above) / (1 + len(self.statistics))

    def quantile(self, alpha: float) -> float:
        if alpha not in self.quantiles:
            self.quantiles[alpha] = float(np.quantile(self.statistics, 1 - alpha))
        return self.quantiles[alpha]


class _Cache(Generic[T]):
    """Least recently used out, thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], T] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> T | None:
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: T) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


# Null distributions by (reference digest, method, size bucket, draws).
CACHE: _Cache[_Null] = _Cache(CACHE_SIZE)


def draws_for(alpha: float) -> int:
    """Null draws enough to put about 20 beyond the (1 - alpha) quantile."""
    return int(min(MAX_DRAWS, max(MIN_DRAWS, math.ceil(20 / alpha))))


def effective_size(n: int, m: int) -> int:
    """n·m/(n+m) to the nearest size bucket: a sample of this size from the reference is as far from it,
    by chance, as the current window is."""
    exact = n * m / (n + m)
    bucket = round(math.log(max(exact, 1.0)) / math.log(BUCKET))
    return max(2, round(BUCKET**bucket))


def _psi(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """PSI between rows of shares and the expected shares; empty shares count as EPSILON."""
    a = np.where(actual == 0, EPSILON, actual)
    e = np.where(expected == 0, EPSILON, expected)
    result: np.ndarray = np.sum((a - e) * np.log(a / e), axis=-1)
    return result


def _chi2(counts: np.ndarray, n: int, expected: np.ndarray) -> np.ndarray:
    """Pearson's statistic of rows of counts against n · the expected shares (a share the reference never
    had counts as EPSILON, so a new category weighs heavily but finitely)."""
    e = n * np.where(expected == 0, EPSILON, expected)
    result: np.ndarray = np.sum((counts - e) ** 2 / e, axis=-1)
    return result


# Multinomial draws and CDF gaps by (shares, size, draws): the same for every continuous feature (quantile
# bins hold equal shares), so fifty features cost one draw. Kept few: each is draws x bins.
DRAWN: _Cache[np.ndarray] = _Cache(8)


def _draw_counts(shares: np.ndarray, size: int, draws: int, keep: bool = True) -> np.ndarray:
    """`draws` rows of multinomial counts of `size` values with these shares (seeded by them: the same
    calibration on every run and in every process)."""
    signature = np.round(shares, 9).tobytes()
    key = ("counts", signature, size, draws)
    found = DRAWN.get(key)
    if found is not None:
        return found
    seed = int(hashlib.sha1(signature).hexdigest()[:8], 16) ^ size
    counts = np.random.default_rng(seed).multinomial(size, shares / shares.sum(), size=draws)
    if keep:
        DRAWN.put(key, counts)
    return counts


def _cdf_gaps(cells: np.ndarray, cdf: np.ndarray, size: int, draws: int) -> np.ndarray:
    """|F_sample - F_reference| at each grid point but the last, for `draws` samples of `size` values:
    the same for every continuous feature (their grid cells hold equal shares), so kept, in float32, and
    each feature's Wasserstein null is this times its own cell widths."""
    key = ("gaps", np.round(cells, 9).tobytes(), size, draws)
    found = DRAWN.get(key)
    if found is not None:
        return found
    drawn = np.cumsum(_draw_counts(cells, size, draws, keep=False), axis=1, dtype=np.float32) / size
    gaps = np.abs(drawn[:, :-1] - cdf[:-1].astype(np.float32))
    DRAWN.put(key, gaps)
    return gaps


def clear_calibration() -> None:
    """Forget every calibration (a new process's state; for benchmarks)."""
    CACHE.clear()
    DRAWN.clear()


def _binned_null(method: str, shares: np.ndarray, size: int, draws: int, digest: str) -> _Null:
    key = (digest, method, size, draws)
    found = CACHE.get(key)
    if found is not None:
        return found
    counts = _draw_counts(shares, size, draws).astype(float)
    statistics = _psi(counts / size, shares) if method == "psi" else _chi2(counts, size, shares)
    null = _Null(np.sort(statistics))
    CACHE.put(key, null)
    return null


def _categorical_null(
    method: str, expected: np.ndarray, reference: CategoricalReference, size: int, draws: int
) -> _Null:
    """The null of a categorical statistic over [common..., rare, unseen]: counts drawn with the rare and
    unseen bins as one (the reference's tail, whose share it knows as well as any other), then the tail
    split with an unseen share drawn around the missing mass by its standard error. The split is an
    estimate, and its error is part of what "by chance" means."""
    key = (reference.digest, method, size, draws)
    found = CACHE.get(key)
    if found is not None:
        return found
    tail_share = float(expected[-2] + expected[-1])
    counts = _draw_counts(np.concatenate([expected[:-2], [tail_share]]), size, draws).astype(np.int64)
    tail = counts[:, -1]
    rng = np.random.default_rng(int(reference.digest[:8], 16) ^ size)
    unseen_share = rng.normal(float(expected[-1]), reference.missing_sd, draws)
    split = np.clip(unseen_share / tail_share, 0.0, 1.0) if tail_share > 0 else np.zeros(draws)
    unseen = rng.binomial(tail, split)
    full = np.column_stack([counts[:, :-1], tail - unseen, unseen]).astype(float)
    statistics = _psi(full / size, expected) if method == "psi" else _chi2(full, size, expected)
    null = _Null(np.sort(statistics))
    CACHE.put(key, null)
    return null


def _ks_scale(n: int, m: int) -> float:
    """√(effective size) with Stephens' small-sample correction."""
    root = math.sqrt(n * m / (n + m))
    return root + 0.12 + 0.11 / root


@dataclass(frozen=True)
class NumericReference:
    """A numeric reference, prepared once: its bins, its quantile grid and its digest."""

    values: np.ndarray  # sorted
    digest: str
    edges: np.ndarray  # inner PSI bin edges
    shares: np.ndarray  # reference share of each PSI bin
    grid: np.ndarray  # Wasserstein grid points (unique reference quantiles)
    grid_cdf: np.ndarray  # reference CDF at each grid point
    grid_cells: np.ndarray  # reference share between consecutive grid points (first: at the minimum)
    spread: float
    cdf: np.ndarray  # the reference's CDF at each of its own values

    @classmethod
    def of(cls, values: Numbers) -> NumericReference:
        array = np.sort(np.asarray(values, dtype=float))
        digest = hashlib.sha1(array.tobytes()).hexdigest()
        distinct = np.unique(array)
        if len(distinct) <= BINS:  # few values (ties): each its own bin, split halfway between them
            edges = (distinct[:-1] + distinct[1:]) / 2
        else:
            edges = np.unique(np.quantile(array, np.linspace(0, 1, BINS + 1)))[1:-1]
        shares = np.bincount(np.searchsorted(edges, array, side="right"), minlength=len(edges) + 1) / len(
            array
        )
        grid = np.unique(np.quantile(array, np.linspace(0, 1, GRID + 1)))
        cdf = np.searchsorted(array, grid, side="right") / len(array)
        cells = np.diff(np.concatenate([[0.0], cdf]))
        own = np.searchsorted(array, array, side="right") / len(array)
        return cls(array, digest, edges, shares, grid, cdf, cells, float(np.std(array)), own)

    def ks(self, current: np.ndarray) -> tuple[float, float]:
        """Two-sample KS: D, the largest gap between the two empirical CDFs, and its p-value from the
        Kolmogorov distribution at the effective size with Stephens' correction (conservative under ties,
        where the CDFs can only meet at fewer points)."""
        from scipy import special  # imported on first use: scipy costs ~60 MiB most processes never need

        ordered = np.sort(current)
        n, m = len(ordered), len(self.values)
        at_reference = np.abs(np.searchsorted(ordered, self.values, side="right") / n - self.cdf)
        at_current = np.abs(
            np.searchsorted(ordered, ordered, side="right") / n
            - np.searchsorted(self.values, ordered, side="right") / m
        )
        d = float(max(at_reference.max(initial=0.0), at_current.max(initial=0.0)))
        return d, float(min(1.0, special.kolmogorov(_ks_scale(n, m) * d)))

    def ks_critical(self, n: int, alpha: float) -> float:
        """The D that has p-value alpha at this n: the threshold KS is judged against."""
        from scipy import special

        return float(special.kolmogi(alpha)) / _ks_scale(n, len(self.values))

    def psi(self, current: np.ndarray) -> float:
        counts = np.bincount(np.searchsorted(self.edges, current, side="right"), minlength=len(self.shares))
        return float(_psi(counts / len(current), self.shares))

    def wasserstein(self, current: np.ndarray) -> tuple[float, float]:
        """(statistic, effect): W1 on the reference's quantile grid, over the reference's standard
        deviation, which the null is drawn for; and the same with the parts of the current window beyond
        the reference's range added exactly (a sample from the reference never goes there, so that part
        sizes the effect but does not decide significance)."""
        ordered = np.sort(current)
        cdf = np.searchsorted(ordered, self.grid, side="right") / len(ordered)
        inside = float(np.sum(np.abs(cdf[:-1] - self.grid_cdf[:-1]) * np.diff(self.grid)))
        low, high = self.grid[0], self.grid[-1]
        outside = float(np.sum(np.clip(low - ordered, 0, None)) + np.sum(np.clip(ordered - high, 0, None)))
        whole = inside + outside / len(ordered)
        if self.spread == 0:
            return (0.0, 0.0) if whole == 0 else (math.inf, math.inf)
        return inside / self.spread, whole / self.spread

    def wasserstein_null(self, size: int, draws: int) -> _Null:
        key = (self.digest, "wasserstein", size, draws)
        found = CACHE.get(key)
        if found is not None:
            return found
        distances = _cdf_gaps(self.grid_cells, self.grid_cdf, size, draws) @ np.diff(self.grid).astype(
            np.float32
        )
        null = _Null(np.sort(distances / self.spread if self.spread else distances))
        CACHE.put(key, null)
        return null


def _decide(
    feature: str,
    method: str,
    statistic: float,
    null: _Null | None,
    p_value: float | None,
    alpha: float,
    n: int,
    min_effect: float,
    kind: str,
    effect: float | None = None,
    critical: float | None = None,
) -> FeatureDrift:
    effect = statistic if effect is None else effect
    if p_value is None and null is not None:
        p_value = null.p_value(statistic)
    threshold = null.quantile(alpha) if null is not None else (critical if critical is not None else alpha)
    drifted = p_value is not None and p_value <= alpha and effect >= min_effect
    return FeatureDrift(
        feature, method, statistic, threshold, drifted, p_value, n, DRIFTED if drifted else OK, effect, kind
    )


def numeric(
    feature: str,
    reference: NumericReference,
    current: Numbers,
    alpha: float,
    min_effect: Mapping[str, float] = MIN_EFFECT,
) -> list[FeatureDrift]:
    """PSI, normalised Wasserstein and KS for one numeric feature, each calibrated at this window's size."""
    values = np.asarray(current, dtype=float)
    n, m = len(values), len(reference.values)
    size, draws = effective_size(n, m), draws_for(alpha)
    psi = reference.psi(values)
    psi_null = _binned_null("psi", reference.shares, size, draws, reference.digest)
    distance, effect = reference.wasserstein(values)
    d, ks_p = reference.ks(values)
    return [
        _decide(feature, "psi", psi, psi_null, None, alpha, n, min_effect["psi"], "numeric"),
        _decide(
            feature,
            "wasserstein",
            distance,
            reference.wasserstein_null(size, draws),
            None,
            alpha,
            n,
            min_effect["wasserstein"],
            "numeric",
            effect=effect,
        ),
        _decide(
            feature,
            "ks",
            d,
            None,
            ks_p,
            alpha,
            n,
            min_effect["ks"],
            "numeric",
            critical=reference.ks_critical(n, alpha),
        ),
    ]


@dataclass(frozen=True)
class CategoricalReference:
    """A categorical reference, prepared once: its categories, their shares and its digest."""

    categories: tuple[str, ...]
    shares: np.ndarray
    size: int
    digest: str
    missing: float  # the expected share of categories it never held: Good-Turing's (values seen once) / size
    missing_sd: float  # that estimate's standard error (Esty's)

    @classmethod
    def of(cls, values: Values) -> CategoricalReference:
        names, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
        digest = hashlib.sha1("\x00".join(f"{n}\x01{c}" for n, c in zip(names, counts, strict=True)).encode())
        size = int(counts.sum())
        once, twice = float(np.sum(counts == 1)), float(np.sum(counts == 2))
        # At least half a value's worth, so that the null can draw an unseen category at all.
        missing = max(once, 0.5) / size
        spread = math.sqrt(max(0.0, once / size * (1 - once / size) + 2 * twice / size) / size)
        return cls(
            tuple(str(n) for n in names), counts / counts.sum(), size, digest.hexdigest(), missing, spread
        )


def categorical(
    feature: str,
    reference: CategoricalReference,
    current: Values,
    alpha: float,
    min_effect: Mapping[str, float] = MIN_EFFECT,
) -> list[FeatureDrift]:
    """Chi-square and PSI over the categories (values as text). The categories the reference never saw
    are one bin of their own, expected at the reference's missing mass: a new category weighs in the
    statistics and is named, never dropped."""
    names, counts = np.unique(np.asarray(current).astype(str), return_counts=True)
    found = dict(zip((str(name) for name in names), counts.tolist(), strict=True))
    n = len(current)
    size, draws = effective_size(n, reference.size), draws_for(alpha)
    # Known categories expected fewer than 5 times at this size are pooled into one "rare" bin: a rare
    # category missing by chance is no drift. (The ones beyond MAX_CATEGORIES are pooled too.)
    common = [i for i in np.argsort(-reference.shares)[:MAX_CATEGORIES] if reference.shares[i] * size >= 5]
    kept = sorted(common)
    known = [found.pop(reference.categories[i], 0) for i in kept]
    rare = sum(found.pop(name, 0) for name in reference.categories if name in found)
    unseen = sorted(found.items(), key=lambda item: (-item[1], item[0]))  # what is left: never seen
    # The reference's own shares overstate the categories it happened to hold; what the missing mass
    # stands for comes out of its rarest ones (the ones seen once are what it is counted from).
    missing = reference.missing
    rare_share = max(0.0, float(1.0 - reference.shares[kept].sum()))
    new_count = sum(found.values())
    if (rare_share - missing) * size < 5:
        # What is left of the rare bin is too thin to judge apart (it would be mostly the estimate's
        # noise): the rare and the unseen categories are one tail bin, at the reference's own share.
        expected = np.concatenate([reference.shares[kept], [rare_share]])
        observed = np.asarray([*known, rare + new_count], dtype=float)
        nulls = {
            m: _binned_null(m, expected, size, draws, f"{reference.digest}:tail") for m in ("chi2", "psi")
        }
    else:
        expected = np.concatenate([reference.shares[kept], [rare_share - missing, missing]])
        observed = np.asarray([*known, rare, new_count], dtype=float)
        nulls = {m: _categorical_null(m, expected, reference, size, draws) for m in ("chi2", "psi")}
    shares = observed / n
    # Pearson's statistic grows with the count: read at the effective size, as the null is drawn.
    chi2 = float(_chi2(shares * size, size, expected))
    variation = float(0.5 * np.sum(np.abs(shares - expected)))
    psi = float(_psi(shares, expected))
    named = tuple((str(name), int(count)) for name, count in unseen[:UNSEEN_NAMED])
    new_share = new_count / n
    judged = [
        _decide(
            feature, "chi2", chi2, nulls["chi2"], None, alpha, n, min_effect["chi2"], "categorical", variation
        ),
        _decide(feature, "psi", psi, nulls["psi"], None, alpha, n, min_effect["psi"], "categorical"),
    ]
    return [replace(signal, unseen=named, unseen_share=new_share) for signal in judged]


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """PSI over ten quantile bins of the reference (uncalibrated: the plain statistic)."""
    return NumericReference.of(reference).psi(np.asarray(current, dtype=float))


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy's)."""
    from scipy import stats

    result = stats.ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)


def wasserstein(reference: Sequence[float], current: Sequence[float]) -> float:
    """Earth mover's distance (exact, scipy's) over the reference's standard deviation."""
    from scipy import stats

    spread = float(np.std(reference))
    distance = float(stats.wasserstein_distance(reference, current))
    if spread == 0:
        return 0.0 if distance == 0 else math.inf
    return distance / spread


def _numbers(values: Sequence[Value] | np.ndarray) -> np.ndarray:
    """The finite numbers among `values` (text, NaN and infinities left out)."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":  # text among them (or booleans): the numbers one by one
        array = np.asarray(
            [v for v in values if isinstance(v, int | float | np.number) and not isinstance(v, bool)],
            dtype=float,
        )
    found: np.ndarray = array.astype(float)
    finite: np.ndarray = found[np.isfinite(found)]
    return finite


def _texts(values: Sequence[Value] | np.ndarray) -> np.ndarray:
    """Values as category names (a boolean as `true`/`false`)."""
    array = np.asarray(values)
    if array.dtype.kind == "U" and (isinstance(values, np.ndarray) or all(type(v) is str for v in values)):
        return array
    return np.asarray([str(v).lower() if isinstance(v, bool | np.bool_) else str(v) for v in values])


def _kind(feature: str, reference: Sequence[Value] | np.ndarray, declared: Sequence[str]) -> str:
    """Categorical when declared, or when most of the reference is text (a stray "N/A" in a numeric column
    is left out of it, not turned into a category)."""
    if feature in declared:
        return "categorical"
    if isinstance(reference, np.ndarray) and reference.dtype.kind in "iufU":
        return "numeric" if reference.dtype.kind != "U" else "categorical"
    if np.asarray(reference).dtype.kind in "iuf":
        return "numeric"
    text = sum(1 for v in reference if isinstance(v, str | bool | np.str_ | np.bool_))
    return "categorical" if text * 2 > len(reference) else "numeric"


def compare(
    samples: Mapping[str, tuple[Sequence[Value], Sequence[Value]]],
    *,
    alpha: float = 0.05,
    min_sample: int = MIN_SAMPLE,
    min_effect: Mapping[str, float] | None = None,
    categorical_features: Sequence[str] = (),
) -> list[FeatureDrift]:
    """Every method for every feature. `alpha` is the false-alarm rate over all the features compared:
    each test runs at alpha / (features x its feature's methods) (Bonferroni), so that a feature is
    flagged by any method at most alpha / features of the time by chance. A feature with fewer than
    `min_sample` usable values in the window (or the reference) is `insufficient_data`; `n` is the
    window's count (0 when the window logged none)."""
    effects = {**MIN_EFFECT, **(min_effect or {})}
    results = []
    for feature, (listed, given_current) in sorted(samples.items()):
        given_reference: Values = listed
        # Lists (from JSON or a search) become arrays once: numbers stay numbers, any text makes text.
        if not isinstance(listed, np.ndarray):
            as_array = np.asarray(listed)
            if as_array.dtype.kind in "iuf":
                given_reference = as_array
        kind = _kind(feature, given_reference, categorical_features)
        methods = ("chi2", "psi") if kind == "categorical" else ("psi", "wasserstein", "ks")
        corrected = alpha / (max(1, len(samples)) * len(methods))
        if kind == "categorical":
            reference, current = _texts(given_reference), _texts(given_current)
        else:
            reference, current = _numbers(given_reference), _numbers(given_current)
        if len(current) < min_sample or len(reference) < min_sample:
            results += [
                FeatureDrift(
                    feature, method, math.nan, math.nan, False, None, len(current), INSUFFICIENT, None, kind
                )
                for method in methods
            ]
            continue
        if kind == "categorical":
            results += categorical(feature, CategoricalReference.of(reference), current, corrected, effects)
        else:
            results += numeric(feature, NumericReference.of(reference), current, corrected, effects)
    return results


def load_reference(path: Path) -> dict[str, list[float | str]]:
    """A reference file's values by feature: JSON `{feature: [values]}` or a CSV with a column each."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        return {key: [as_value(v) for v in values if v is not None] for key, values in data.items()}
    columns: dict[str, list[float | str]] = {}
    for row in csv.DictReader(text.splitlines()):
        for key, value in row.items():
            if value not in ("", None):
                columns.setdefault(key, []).append(as_value(value, parse=True))
    return columns


def as_value(value: object, *, parse: bool = False) -> float | str:
    """A number where the value is one, else its text (a category; a boolean as `true`/`false`). Text is
    read as a number only from a CSV (`parse`), where everything is text, and only when it is a finite
    one: a postcode `02139` in JSON or in a logged document stays a category."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return float(value)
    if parse:
        try:
            number = float(str(value))
        except ValueError:
            return str(value)
        if math.isfinite(number):
            return number
    return str(value)
