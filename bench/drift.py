"""How long calibrated drift takes for an incident's features (issue 20's target: 50 features with 10,000
reference and 1,000 current values under 2 s cold and 0.2 s with the calibration cached).

    .venv/bin/python bench/drift.py [--features 50] [--reference 10000] [--current 1000] [--runs 5]

Times `app.ml.drift.compare` (what evidence gathering calls at every incident) on numeric features
(normal, lognormal, integers with ties, in turn) and a tenth categorical, cold (the calibration cache
emptied; scipy already imported), in a new process (the first incident after start-up: importing the
drift module and scipy counted too), and warm (the same reference, new current windows
of the same size: the calibration is reused). The baseline run in the same process is the plain
statistics without calibration (PSI, Wasserstein, KS), so the ratio shows what calibrating costs.
Prints median and max of each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.ml import drift

sys.path.insert(0, str(Path(__file__).parent))
from timing import show, timed  # noqa: E402 (bench/timing.py, beside this file)


def samples(features: int, reference: int, current: int, seed: int) -> dict[str, tuple[list, list]]:
    rng = np.random.default_rng(seed)
    draws: list[Callable[[int], list]] = [
        lambda k: rng.normal(0, 1, k).tolist(),
        lambda k: rng.lognormal(0, 1, k).tolist(),
        lambda k: rng.poisson(3, k).astype(float).tolist(),
    ]
    out: dict[str, tuple[list, list]] = {}
    for index in range(features):
        if index % 10 == 9:
            cards = ["visa", "mastercard", "amex", "paypal", "other"]
            shares = [0.4, 0.3, 0.15, 0.1, 0.05]
            out[f"f{index}"] = (
                rng.choice(cards, reference, p=shares).tolist(),
                rng.choice(cards, current, p=shares).tolist(),
            )
        else:
            draw = draws[index % 3]
            out[f"f{index}"] = (draw(reference), draw(current))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--reference", type=int, default=10_000)
    parser.add_argument("--current", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = samples(args.features, args.reference, args.current, 1)
    later = samples(args.features, args.reference, args.current, 2)
    # The same references, new windows: what a second incident on the same model compares.
    again = {name: (data[name][0], later[name][1]) for name in data}
    drift.compare({"warm-up": data["f0"]})  # scipy imported, numpy's first calls made

    cold = show(
        f"{args.features} features, cold ({args.runs} runs)",
        timed(lambda: drift.compare(data), args.runs, before=drift.clear_calibration),
    )
    drift.compare(data)
    warm = show(
        f"{args.features} features, calibration cached", timed(lambda: drift.compare(again), args.runs)
    )

    def plain() -> None:
        for reference, current in data.values():
            if isinstance(reference[0], str):
                continue
            drift.psi(reference, current)
            drift.wasserstein(reference, current)
            drift.ks(reference, current)

    base = show("baseline: plain statistics, no calibration", timed(plain, args.runs))
    fresh = first_in_new_process(args)
    print(f"{args.features} features, first compare in a new process (imports included): {fresh:.3f} s")
    signals = drift.compare(data)
    print(
        f"ratios: cold / plain = {cold / base:.1f}x, cached / plain = {warm / base:.1f}x; "
        f"{len(signals)} signals, {sum(s.drifted for s in signals)} drifted (one distribution: expect 0 or 1)"
    )
    print(
        f"targets: cold < 2 s {'met' if cold < 2 else 'MISSED'} "
        f"(in a new process {'met' if fresh < 2 else 'MISSED'}), "
        f"cached < 0.2 s {'met' if warm < 0.2 else 'MISSED'}"
    )


FRESH = """
import sys, time
sys.path.insert(0, {bench!r})
from drift import samples
data = samples({features}, {reference}, {current}, 1)
started = time.perf_counter()
from app.ml import drift
drift.compare(data)
print(time.perf_counter() - started)
"""


def first_in_new_process(args: argparse.Namespace) -> float:
    """The median over runs of a new interpreter's first compare, the module and scipy imported in it."""
    code = FRESH.format(
        bench=str(Path(__file__).parent),
        features=args.features,
        reference=args.reference,
        current=args.current,
    )
    found = sorted(
        float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
        for _ in range(max(1, min(args.runs, 3)))
    )
    return found[len(found) // 2]


if __name__ == "__main__":
    main()
