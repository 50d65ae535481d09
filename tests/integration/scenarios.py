"""Generated history whose error ratio over any window is known exactly.

Every rate is constant inside 5-minute steps aligned to the evaluation time T, and samples sit on the
step boundaries, so Prometheus' `rate(x[w])` at T is exactly (x(T) - x(T-w)) / w with no
extrapolation, and each expected ratio is a sum over segments, computed here from the scenario alone.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.prometheus import Series

STEP = 300
DAY = 86400
HISTORY = 31 * DAY
WINDOWS = {
    "5m": 300,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "1d": DAY,
    "3d": 3 * DAY,
    "30d": 30 * DAY,
}

# (age in seconds up to which this fraction applies, fraction); ages are measured back from T.
Profile = list[tuple[int, float]]

OUTAGE: Profile = [(300, 0.3), (3600, 0.02), (6 * 3600, 0.004), (3 * DAY, 0.001), (HISTORY, 0.0005)]
STEADY: Profile = [(HISTORY, 0.005)]
SLOW: Profile = [(3600, 0.05), (HISTORY, 0.002)]
WRONG: Profile = [(6 * 3600, 0.04), (HISTORY, 0.01)]
# Ten minutes of 30 % errors ten hours before T, background otherwise: a page that later clears.
BLIP: Profile = [(10 * 3600, 0.0005), (10 * 3600 + 600, 0.3), (HISTORY, 0.0005)]


def fraction_at_age(profile: Profile, age: float) -> float:
    for limit, fraction in profile:
        if age <= limit:
            return fraction
    return profile[-1][1]


def expected_ratio(profile: Profile, window: int) -> float:
    """Bad share over the last `window` seconds at constant traffic: the time-weighted fraction."""
    covered, bad = 0, 0.0
    for limit, fraction in profile:
        span = min(limit, window) - covered
        if span <= 0:
            break
        bad += span * fraction
        covered += span
    return bad / window


def _cumulative(
    T: int, per_second: float, share: Callable[[float], float], step: int = STEP, history: int = HISTORY
) -> Callable[[int], float]:
    """Counter values precomputed at every step (O(n) once instead of O(n²))."""
    values: dict[int, float] = {}
    running = 1000.0
    start = T - history
    values[start] = running
    for step_end in range(start + step, T + 1, step):
        age_mid = T - step_end + step / 2
        running += per_second * step * share(age_mid)
        values[step_end] = running
    return values.__getitem__


def all_series(T: int, step: int = STEP, history: int = HISTORY) -> list[Series]:
    series: list[Series] = []

    def cumulative(T: int, per_second: float, share: Callable[[float], float]) -> Callable[[int], float]:
        return _cumulative(T, per_second, share, step, history)

    def requests(service: str, profile: Profile, rate: float) -> None:
        def bad_share(age: float) -> float:
            return fraction_at_age(profile, age)

        series.append(
            Series(
                "http_requests_total",
                {"service": service, "code": "500"},
                cumulative(T, rate, bad_share),
            )
        )
        series.append(
            Series(
                "http_requests_total",
                {"service": service, "code": "200"},
                cumulative(T, rate, lambda age: 1 - bad_share(age)),
            )
        )

    requests("fraud-model", OUTAGE, 100.0)
    requests("fraud-steady", STEADY, 100.0)
    requests("fraud-blip", BLIP, 100.0)

    # Latency histogram: 50 req/s; the slow share is above 0.25 s, split evenly between (0.25, 0.5]
    # and (0.5, +Inf); 60 % of the fast ones are under 0.1 s.
    def slow(age: float) -> float:
        return fraction_at_age(SLOW, age)

    buckets: dict[str, Callable[[float], float]] = {
        "0.1": lambda age: (1 - slow(age)) * 0.6,
        "0.25": lambda age: 1 - slow(age),
        "0.5": lambda age: 1 - slow(age) / 2,
        "+Inf": lambda age: 1.0,
    }
    for le, share in buckets.items():
        series.append(
            Series(
                "http_request_duration_seconds_bucket",
                {"service": "fraud-model", "le": le},
                cumulative(T, 50.0, share),
            )
        )
    series.append(
        Series(
            "http_request_duration_seconds_count",
            {"service": "fraud-model"},
            cumulative(T, 50.0, lambda a: 1.0),
        )
    )
    series.append(
        Series(
            "http_request_duration_seconds_sum",
            {"service": "fraud-model"},
            cumulative(T, 50.0, lambda a: 0.1),
        )
    )

    # Labelled predictions: 2 a second, a share of them wrong.
    def wrong(age: float) -> float:
        return fraction_at_age(WRONG, age)

    series.append(
        Series(
            "fraud_predictions_labelled_total",
            {"service": "fraud-model", "outcome": "wrong"},
            cumulative(T, 2.0, wrong),
        )
    )
    series.append(
        Series(
            "fraud_predictions_labelled_total",
            {"service": "fraud-model", "outcome": "right"},
            cumulative(T, 2.0, lambda age: 1 - wrong(age)),
        )
    )
    return series
