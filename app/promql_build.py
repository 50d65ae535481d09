"""Building PromQL text: the one place where sloguard writes queries for Prometheus.

SLO evaluation (app/slo/queries.py), the generated rules (app/slo/rules.py), the SLI model
(app/slo/model.py), ML evidence (app/ml/service.py) and the review's charts (app/postmortems/service.py)
all build their expressions from these functions, so a label value is escaped the same way everywhere
and a window is written the same way everywhere. Checking what Prometheus would accept is
app/slo/promql.py.

Each function returns text; none parses or checks what it is given. Values that come from people or
from Prometheus (label values, versions, model names) go through `string`; raw matcher text from a
spec or sloguard.yaml (`code=~"5.."`) has been checked where it was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def string(value: str) -> str:
    """`value` as a PromQL double-quoted string literal, whatever it holds (quotes, backslashes, lines)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def match(label: str, value: str, operator: str = "=") -> str:
    """One label matcher with its value escaped: `match("code", "5..", "=~")` -> `code=~"5.."`."""
    return f"{label}{operator}{string(value)}"


def matchers(*parts: str, separator: str = ",") -> str:
    """Matchers joined for one pair of braces; empty parts (an unset selector) are left out."""
    return separator.join(part for part in parts if part)


def selector(metric: str, *parts: str, separator: str = ",") -> str:
    """`metric{parts}`; `metric` may be empty (`{__name__=~"..."}`) and the braces always appear."""
    return f"{metric}{{{matchers(*parts, separator=separator)}}}"


def over(expression: str, window: str) -> str:
    """A range: `expression[window]`."""
    return f"{expression}[{window}]"


def call(function: str, *arguments: str) -> str:
    return f"{function}({', '.join(arguments)})"


def over_time(function: str, expression: str, window: str) -> str:
    """A range function over a window: `over_time("sum_over_time", x, "30d")` -> `sum_over_time(x[30d])`."""
    return call(function, over(expression, window))


def rate(expression: str, window: str) -> str:
    return over_time("rate", expression, window)


def increase(expression: str, window: str) -> str:
    return over_time("increase", expression, window)


def aggregate(operator: str, expression: str, *, by: Sequence[str] = (), without: Sequence[str] = ()) -> str:
    """`sum(x)`, `sum by (a) (x)`, `max(x) without (a)`.

    Both clause positions are PromQL; `by` goes first and `without` last because those are the texts
    the evidence queries and the Sloth-compatible rules have always had."""
    if by:
        return f"{operator} by ({', '.join(by)}) ({expression})"
    if without:
        return f"{operator}({expression}) without ({', '.join(without)})"
    return f"{operator}({expression})"


def total(expression: str, *, by: Sequence[str] = ()) -> str:
    """`sum(x)`, or `sum by (a) (x)`."""
    return aggregate("sum", expression, by=by)


def group(expression: str) -> str:
    return f"({expression})"


def binary(left: str, operator: str, right: str, *, separator: str = " ") -> str:
    """`left operator right`; rules put long operands on lines of their own (`separator="\\n"`)."""
    return f"{left}{separator}{operator}{separator}{right}"


def ratio_of_totals(numerator: str, denominator: str) -> str:
    """`sum(numerator) / sum(denominator)`: a ratio of summed rates, never an average of ratios."""
    return binary(total(numerator), "/", total(denominator))


def either(expressions: Iterable[str], *, separator: str = "\n") -> str:
    """The expressions joined with `or`, one per line."""
    return f"{separator}or{separator}".join(expressions)


def with_label(expression: str, label: str, value: str) -> str:
    """The expression's series with one more label set to a constant (label_replace on an empty match)."""
    return call("label_replace", expression, string(label), string(value), string(""), string(""))
