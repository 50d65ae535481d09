"""The console's pure pieces: where sign-in may send a browser back to, and the page tier's burn."""

from __future__ import annotations

import pytest

from app.slo import burn
from app.slo import service as slos
from app.slo.model import EventsSli, Slo
from app.web import is_console
from app.web.auth import safe_next


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil",
        "evil",
        "/ok\r\nSet-Cookie: x=1",
        "/" + "a" * 600,
        "javascript:alert(1)",
    ],
)
def test_sign_in_never_sends_a_browser_elsewhere(given: str | None) -> None:
    assert safe_next(given) == "/"


@pytest.mark.parametrize(
    "given", ["/", "/incidents/12", "/slos/checkout-a?x=1", "/incidents?status=triggered"]
)
def test_sign_in_keeps_a_page_of_the_console(given: str) -> None:
    assert safe_next(given) == given


def test_console_paths_are_told_from_the_api() -> None:
    assert is_console("/") and is_console("/incidents/3") and is_console("/signin")
    assert (
        not is_console("/api/v1/incidents/3") and not is_console("/incidentsX") and not is_console("/healthz")
    )


def slo(tiers: tuple[burn.Tier, ...]) -> Slo:
    return Slo(
        id="s-a",
        service="s",
        name="a",
        objective=0.999,
        sli=EventsSli("e", "t"),
        source="x.yaml",
        tiers=tiers,
    )


def test_page_burn_is_the_lower_window_of_the_fastest_page_tier() -> None:
    tiers = burn.tiers_for_period(30 * 86400)  # page-fast 5m/1h x14.4, page-slow 30m/6h x6, tickets
    spec = slo(tiers)
    fast = slos.page_tier(spec)
    assert fast is not None and fast.name == "page-fast"
    windows = {
        "5m": {"burn_rate": 20.0},
        "1h": {"burn_rate": 15.0},
        "30m": {"burn_rate": 1.0},
        "6h": {"burn_rate": 99.0},
    }
    # both of page-fast's windows above 14.4 -> it fires, and the figure (15) is above its factor too
    assert slos.page_burn(spec, windows) == 15.0
    assert slos.page_burn(spec, {"5m": {"burn_rate": 20.0}, "1h": {"burn_rate": None}}) is None
    assert slos.page_burn(spec, {}) is None
    assert slos.page_burn(slo(()), windows) is None
