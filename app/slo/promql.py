"""PromQL as Prometheus reads it: parse with promql-parser (a port of Prometheus' own parser), then refuse
what that parser accepts but Prometheus 2.x does not (3.x-only syntax, experimental functions, durations
past Prometheus' int64-nanosecond range), so that what `sloguard slo lint` accepts, promtool accepts.

The tests cross-check every rule here against the real `promtool check rules`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import promql_parser

from app import durations, promql_build
from app.slo.model import LABEL_NAME, METRIC_NAME

# Functions that Prometheus 2.x (the Debian 2.42 the tests use) and 3.x both have. promql-parser knows
# newer and experimental ones (limitk, sort_by_label, info, first_over_time, ...) that 2.x refuses, and
# 3.x only behind a feature flag.
FUNCTIONS = frozenset(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
    clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg
    delta deriv exp floor histogram_count histogram_fraction histogram_quantile histogram_sum hour idelta
    increase irate label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time minute
    month pi predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh
    sort sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector
    year""".split()
)
AGGREGATIONS = frozenset(
    "avg bottomk count count_values group max min quantile stddev stdvar sum topk".split()
)
MAX_DURATION = timedelta(seconds=durations.MAX_PROMETHEUS_SECONDS)
# The parser overflows its stack (the process dies) near 10,000 levels of nesting and slows sharply well
# before: bound the depth of the syntax tree before parsing. A generated query nests a spec's query a
# few levels deep and joins a few dozen of them with `or`.
MAX_DEPTH = 1000
QUERY_DEPTH = 200  # one query in a spec
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_TOKENS = re.compile(r"[(\[{]|[)\]}]|[-+*/%^]|[=!<>]=|[<>]|\b(?:and|or|unless|atan2)\b")
_MATCH_OPS = (  # MatchOp members compare equal but are not hashable
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


class PromqlError(ValueError):
    """An expression Prometheus would refuse; the message says why."""


def parse(expression: str, limit: int = MAX_DEPTH) -> Any:
    """The expression's syntax tree; PromqlError when Prometheus 2.x would not load it."""
    nesting = depth(expression)
    if nesting > limit:
        raise PromqlError(
            f"too deeply nested to check: about {nesting} levels of brackets and operators (at most {limit})"
        )
    try:
        tree = promql_parser.parse(expression)
    except (ValueError, OverflowError) as exc:
        raise PromqlError(f"not valid PromQL: {exc}") from None
    for node in _nodes(tree):
        problem = _node_problem(node)
        if problem is not None:
            raise PromqlError(f"not valid PromQL for Prometheus 2.x: {problem}")
    return tree


def problem(expression: str, limit: int = MAX_DEPTH) -> str | None:
    """Why Prometheus would refuse the expression, or None."""
    try:
        parse(expression, limit)
    except PromqlError as exc:
        return str(exc)
    return None


def depth(expression: str) -> int:
    """An upper bound on the depth of the syntax tree, from brackets and operators outside strings: each
    open bracket is a level, and so is each operator in a chain (`a + b + c` nests left)."""
    chains = [0]  # operators seen at each open bracket level
    total = deepest = 0  # total: len(chains) - 1 + sum(chains), kept as it changes
    for token in _TOKENS.findall(_STRINGS.sub('""', expression)):
        if token in "([{":
            chains.append(0)
            total += 1
        elif token in ")]}":
            if len(chains) > 1:
                total -= 1 + chains.pop()
        else:
            chains[-1] += 1
            total += 1
        deepest = max(deepest, total)
    return deepest


def _nodes(tree: Any) -> Iterator[Any]:
    """Every node, depth first (promql_parser.walk takes seconds on 400 chained operators; this does not)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, promql_parser.BinaryExpr):
            stack += [node.lhs, node.rhs]
        elif isinstance(node, promql_parser.AggregateExpr):
            stack += [node.expr] if node.param is None else [node.expr, node.param]
        elif isinstance(node, promql_parser.UnaryExpr | promql_parser.ParenExpr | promql_parser.SubqueryExpr):
            stack.append(node.expr)
        elif isinstance(node, promql_parser.Call):
            stack += list(node.args)
        elif isinstance(node, promql_parser.MatrixSelector):
            stack.append(node.vector_selector)


def _node_problem(node: Any) -> str | None:
    if isinstance(node, promql_parser.Call):
        name = node.func.name
        return (
            None if name in FUNCTIONS else f"function {name}() is not in Prometheus 2.x (or is experimental)"
        )
    if isinstance(node, promql_parser.AggregateExpr):
        if str(node.op) not in AGGREGATIONS:
            return f"aggregation {node.op} is not in Prometheus 2.x (or is experimental)"
        return _names_problem(node.modifier.labels if node.modifier else [])
    if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
        matching = node.modifier.matching
        return _names_problem([*(matching.labels if matching else []), *(node.modifier.group_labels or [])])
    if isinstance(node, promql_parser.VectorSelector):
        return _selector_problem(node) or _duration_problem(node.offset, "offset") or _at_problem(node)
    if isinstance(node, promql_parser.MatrixSelector):
        return _duration_problem(node.range, "range")
    if isinstance(node, promql_parser.SubqueryExpr):
        for value, what in ((node.range, "range"), (node.step, "step"), (node.offset, "offset")):
            found = _duration_problem(value, f"subquery {what}")
            if found:
                return found
        return _at_problem(node)
    return None


def _at_problem(node: Any) -> str | None:
    try:
        if node.at is not None:
            node.at.at  # noqa: B018 (reading it converts the timestamp, which fails out of range)
    except (ValueError, OverflowError) as exc:
        return f"@ timestamp out of range ({exc})"
    return None


def _names_problem(names: list[str]) -> str | None:
    for name in names:
        if not LABEL_NAME.fullmatch(name):
            return f"label name {name!r} needs quoting, which only Prometheus 3 reads"
    return None


def _selector_problem(node: Any) -> str | None:
    if node.matchers.or_matchers:
        return "`or` inside a selector's braces is Prometheus 3 syntax"
    for matcher in node.matchers.matchers:
        if not LABEL_NAME.fullmatch(matcher.name):
            return f"label name {matcher.name!r} needs quoting, which only Prometheus 3 reads"
        if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
            if not METRIC_NAME.fullmatch(matcher.value):
                return f"metric name {matcher.value!r} needs quoting, which only Prometheus 3 reads"
        if matcher.op in (promql_parser.MatchOp.Re, promql_parser.MatchOp.NotRe):
            found = regex_problem(matcher.value)
            if found is not None:
                return f"regex {matcher.value!r}: {found} (Prometheus uses Go's regexp syntax)"
    return None


# Go's regexp (what Prometheus runs) and Rust's regex (what promql-parser checks with) differ; these are
# the differences that make Go refuse a pattern that Rust accepts. Stricter than Go in a few rare cases.
_GO_FLAGS = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)[:)]")
_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_UNICODE_CLASS = re.compile(r"\\[pP](?:\{\^?([^}]*)\}|(.))")
_GO_SCRIPTS = frozenset(
    "Any Arabic Armenian Bengali Cyrillic Devanagari Georgian Greek Han Hangul Hebrew Hiragana Katakana "
    "Latin Tamil Thai".split()
)
MAX_REPEAT = 1000  # Go refuses a counted repetition, or nested ones multiplied, past this


def regex_problem(pattern: str) -> str | None:
    """Why Go's regexp would refuse a pattern that Rust's regex accepts (None if no such reason)."""
    groups = [1]  # the largest product of nested counted repetitions inside each open group
    last = 1  # the same product for the atom just read (1 for a character, the group's for a group)
    repeated = ""  # "" after an atom, "op" after a repetition, "lazy" after its `?`
    i = 0
    while i < len(pattern):
        char = pattern[i]
        count = _COUNT.match(pattern, i)
        if char in "*+?" or count:
            if repeated == "op" and char == "?":
                repeated = "lazy"
            elif repeated:
                return f"nested repetition at {pattern[i : i + 5]!r}"
            else:
                repeated = "op"
            if count:
                factor = last * max(int(count.group(1)), int(count.group(2) or 0))
                if factor > MAX_REPEAT:
                    return f"repetition count past {MAX_REPEAT} at {count.group(0)!r}"
                groups[-1] = max(groups[-1], factor)
                i = count.end()
                continue
            i += 1
            continue
        repeated, last = "", 1
        if char == "\\":
            found = _escape_problem(pattern, i)
            if found:
                return found
            i += 2
        elif char == "[":
            end, found = _class_end(pattern, i)
            if found:
                return found
            i = end
        elif char == "(":
            if pattern.startswith("(?", i) and not pattern.startswith("(?P<", i):
                if not _GO_FLAGS.match(pattern, i):
                    return (
                        f"group syntax {pattern[i : i + 4]!r} (Go knows (?P<name>...), (?:...), flags imsU)"
                    )
            groups.append(1)
            i += 1
        elif char == ")" and len(groups) > 1:
            last = groups.pop()
            groups[-1] = max(groups[-1], last)
            i += 1
        else:
            i += 1
    return None


def _escape_problem(pattern: str, at: int) -> str | None:
    following = pattern[at + 1 : at + 2]
    if following in ("u", "U"):
        return f"escape \\{following} (Go spells code points \\x{{...}})"
    unicode_class = _UNICODE_CLASS.match(pattern, at)
    if unicode_class and unicode_class.group(1) is not None:
        name = unicode_class.group(1)
        if not (re.fullmatch(r"[A-Z][a-z]?", name) or name in _GO_SCRIPTS):
            return f"Unicode class {name!r} (use a one- or two-letter category like L or Lu, or a script)"
    return None


def _class_end(pattern: str, start: int) -> tuple[int, str | None]:
    """Where a `[...]` class ends, and a problem inside it."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):
        i += 1  # a `]` first in the class is a literal
    while i < len(pattern) and pattern[i] != "]":
        if pattern.startswith(("&&", "--", "~~"), i):
            return i, f"{pattern[i : i + 2]!r} in a class (a set operation in Rust, not in Go)"
        if pattern[i] == "\\":
            found = _escape_problem(pattern, i)
            if found:
                return i, found
            i += 2
        elif pattern.startswith("[:", i) and ":]" in pattern[i:]:
            i = pattern.index(":]", i) + 2
        else:
            i += 1
    return i + 1, None


def _duration_problem(value: timedelta | None, what: str) -> str | None:
    if value is not None and abs(value) > MAX_DURATION:
        shown = durations.format_prometheus(int(abs(value).total_seconds()))
        return f"{what} {shown} is past Prometheus' limit of about 292 years"
    return None


def selector(metric: str, matchers: str) -> tuple[str, str]:
    """Check `metric{matchers}` is one plain series selector; return it with its matchers re-written
    (escaped, no trailing comma) so they can be combined with more."""
    tree = parse(f"{metric}{{{matchers}}}")
    if not isinstance(tree, promql_parser.VectorSelector) or tree.offset is not None or tree.at is not None:
        raise PromqlError('must be one series selector, like name{label="value"}, without offset or @')
    if tree.name is None:
        raise PromqlError("must name the metric before the braces")
    parts = [promql_build.match(m.name, m.value, _operator(m.op)) for m in tree.matchers.matchers]
    return tree.name, ",".join(parts)


def _operator(op: Any) -> str:
    return next(text for member, text in _MATCH_OPS if member == op)


def selectors(expression: str) -> list[str]:
    """Each series selector of `expression` as its own text (metric name and matchers, escaped; any offset
    or @ left off), e.g. to ask which series it reads over a span."""
    found = []
    for node in _nodes(parse(expression)):
        if isinstance(node, promql_parser.VectorSelector):
            parts = [promql_build.match(m.name, m.value, _operator(m.op)) for m in node.matchers.matchers]
            text = promql_build.selector(node.name or "", *parts)
            if text not in found:
                found.append(text)
    return found


def narrowed(expression: str, label: str, value: str, operator: str = "=") -> str:
    """`expression` with one more matcher in every selector's braces: the same query over only the series
    whose `label` matches `value` (a version's share of an SLI's bad or total events). Braces in PromQL
    outside strings are always a selector's, so the matcher goes after each `{`; the result is parsed to
    prove that every selector got it (a bare `metric` with no braces would not, and is refused)."""
    matcher = promql_build.match(label, value, operator)
    out: list[str] = []
    i, n = 0, len(expression)
    while i < n:
        char = expression[i]
        if char in "\"'`":
            end = i + 1
            while end < n and expression[end] != char:
                end += 2 if char != "`" and expression[end] == "\\" else 1
            out.append(expression[i : end + 1])
            i = end + 1
            continue
        out.append(char)
        if char == "{":
            rest = expression[i + 1 :].lstrip()
            out.append(matcher if rest.startswith("}") else matcher + ",")
        i += 1
    text = "".join(out)
    for node in _nodes(parse(text)):
        if isinstance(node, promql_parser.VectorSelector) and not any(
            m.name == label and m.value == value and _operator(m.op) == operator
            for m in node.matchers.matchers
        ):
            raise PromqlError(f"a selector without braces ({node.name}) cannot be narrowed to one {label}")
    return text
