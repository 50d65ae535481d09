"""The PromQL builder writes the texts Prometheus reads; expected strings are written by hand."""

from __future__ import annotations

import promql_parser

from app import promql_build


def test_label_values_are_escaped_whatever_they_hold() -> None:
    assert promql_build.match("v", 'x"}\\\n') == 'v="x\\"}\\\\\\n"'
    tree = promql_parser.parse(promql_build.selector("m", promql_build.match("v", 'x"}, a="b')))
    assert [(m.name, m.value) for m in tree.matchers.matchers] == [("v", 'x"}, a="b')]


def test_selectors_leave_out_empty_matchers_and_always_have_braces() -> None:
    assert promql_build.selector("m", "", 'a="b"', "") == 'm{a="b"}'
    assert promql_build.selector("m") == "m{}"
    assert promql_build.selector("", 'a="b"', 'c="d"', separator=", ") == '{a="b", c="d"}'


def test_aggregations_ranges_and_ratios() -> None:
    requests = promql_build.selector("http_requests_total", 'service="fraud"')
    assert (
        promql_build.total(promql_build.increase(requests, "60s"), by=("model_version",))
        == 'sum by (model_version) (increase(http_requests_total{service="fraud"}[60s]))'
    )
    assert promql_build.aggregate("max", "x > 1", without=("w",)) == "max(x > 1) without (w)"
    assert promql_build.ratio_of_totals("rate(a[5m])", "rate(b[5m])") == "sum(rate(a[5m])) / sum(rate(b[5m]))"
    assert promql_build.either(["a", "b"]) == "a\nor\nb"
    assert promql_build.with_label("x", "l", "v") == 'label_replace(x, "l", "v", "", "")'
