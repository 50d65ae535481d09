"""A fake Elasticsearch 9 for tests: a local HTTP server that evaluates queries and aggregations.

The real `elasticsearch` client talks to it (`Elasticsearch(fake.url)`), and the fake answers from the
documents a test loaded with `add_documents`, so a wrong query gives a wrong answer. Anything outside the
subset below answers 400 naming the clause, never "match everything".

Endpoints: `GET|HEAD /` (cluster info), `GET|POST [/{index}]/_search`, `[/{index}]/_count` and
`[/{index}]/_msearch` (NDJSON), `HEAD /{index}`. `{index}` may be a comma list and/or wildcard patterns;
a missing concrete index is 404 `index_not_found_exception` (unless `ignore_unavailable=true`), a pattern
matching nothing gives an empty result, as in Elasticsearch.

Queries: match_all, match_none, bool (must/filter/should/must_not/minimum_should_match), term, terms,
exists, match, match_phrase, range, query_string. Aggregations: filter, filters, range, date_range, terms,
date_histogram, value_count, min, max, avg, sum, cardinality, top_hits.

Semantics chosen where Elasticsearch would depend on the mapping (there is none here):
- A field path `a.b` finds nested objects (`{"a": {"b": 1}}`) and dotted keys (`{"a.b": 1}`); a
  `.keyword` suffix falls back to the field itself; lists are multi-valued fields; null means missing.
- term/terms: exact, case-sensitive equality (keyword semantics); numbers compare numerically ("500"
  matches 500); two ISO dates compare as instants.
- Text matching (match, match_phrase, query_string `field:value` and bare terms): strings are split on
  whitespace into lowercased words with surrounding punctuation stripped (`"Error: gateway."` gives
  `error`, `gateway`; `fraud-model` stays one word). A value matches when its words contain the query's
  words as a contiguous sequence, so `service:fraud-model` matches "fraud-model" and "FRAUD-MODEL" but
  not "fraud-model-shadow", and `message:error` matches "feature store error.". `match` instead needs any
  (operator or) or all (operator and) of the words. On a `field.keyword` path the match is exact and
  case-sensitive. Numbers match numerically, booleans as "true"/"false".
- Wildcards (`field:err*`, `?`) match the whole value or any single word, case-insensitively.
- Dates: ISO-8601 strings (Z, offsets, millis, or naive = UTC), epoch-millis numbers or digit strings,
  and `now`, `now-5m`, `now-1h/h` (units ms s m h d w). Range bounds compare as numbers when they read as
  a number or a date (a date becomes epoch millis, as do the document's date strings), else as strings.
  No rounding of `lte` dates to the end of a unit.
- query_string: `field:value`, `field:"phrase"`, bare terms (every field, or `default_field`/`fields`),
  `field:>=500` `>` `<` `<=`, `field:[a TO b]`, `{a TO b}` (exclusive, mixable, `*` open), `field:err*`,
  `field:*`, `_exists_:field`, `field:(a OR b)`, `NOT`/`!`/`-` and `+` prefixes, `AND`/`&&`, `OR`/`||`,
  parentheses, backslash escapes, `^boost` (ignored). Precedence is NOT > AND > OR; juxtaposed clauses
  are joined with `default_operator` (OR unless given), `+` clauses are required and, when any are
  present, plain clauses become optional (as in Lucene). After `field:` colons belong to the value.
  Fuzzy `~`, regex `/../` and field wildcards are refused with 400.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import gzip
import json
import operator
import re
import socket
import string
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

CONTENT_TYPE = "application/vnd.elasticsearch+json;compatible-with=9"
VERSION = "9.1.0"
Predicate = Callable[[dict[str, Any]], bool]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NOW = re.compile(r"now((?:[+-]\d+(?:ms|[smhdw]))*)(?:/(ms|[smhdw]))?")
_ISO_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}")
_COMPARE = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}


class EsError(Exception):
    """An Elasticsearch-shaped error: status, `error.type`, `error.reason`."""

    def __init__(self, status: int, type_: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason, self.extra = status, type_, reason, extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def _parsing(reason: str) -> EsError:
    return EsError(400, "parsing_exception", reason)


def _illegal(reason: str) -> EsError:
    return EsError(400, "illegal_argument_exception", reason)


def _checked(kind: str, params: Any, allowed: set[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise _parsing(f"[{kind}] expects an object, got {params!r}")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise _parsing(f"[{kind}] unknown field [{unknown[0]}] (not supported by the fake)")
    for key in required:
        if key not in params:
            raise _parsing(f"[{kind}] requires [{key}]")
    return params


# ---------------------------------------------------------------- values: fields, numbers, dates, words


def field_values(doc: Any, field: str) -> list[Any]:
    """The non-null leaf values at `field` (dotted path through objects, dotted keys and lists)."""
    values = _lookup(doc, field.split("."))
    if not values and field.endswith(".keyword"):
        values = _lookup(doc, field.removesuffix(".keyword").split("."))
    return values


def _lookup(node: Any, parts: list[str]) -> list[Any]:
    if isinstance(node, list):
        return [value for item in node for value in _lookup(item, parts)]
    if not parts:
        return [] if node is None else [node]
    if not isinstance(node, dict):
        return []
    found: list[Any] = []
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in node:
            found += _lookup(node[key], parts[i:])
    return found


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    elif node is not None:
        yield node


def _number(text: str) -> float | None:
    return float(text) if _NUMBER.fullmatch(text.strip()) else None


def date_ms(text: str) -> float | None:
    """Epoch millis of an ISO-8601 string or `now` date math; None when it is not a date."""
    text = text.strip()
    now = _NOW.fullmatch(text)
    if now:
        ms = time.time_ns() // 1_000_000
        for sign, amount, unit in re.findall(r"([+-])(\d+)(ms|[smhdw])", now[1]):
            ms += (1 if sign == "+" else -1) * int(amount) * _UNIT_MS[unit]
        if now[2]:
            ms -= ms % _UNIT_MS[now[2]]
        return float(ms)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return float((moment - _EPOCH) // _MS)


def to_number(value: Any) -> float | None:
    """A number for comparisons: numbers, numeric strings, dates (epoch millis); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        number = _number(value)
        return number if number is not None else date_ms(value)
    return None


def format_ms(ms: float) -> str:
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _is_date_string(value: Any) -> bool:
    return isinstance(value, str) and _number(value) is None and date_ms(value) is not None


def _words(text: str) -> list[str]:
    return [word for raw in text.lower().split() if (word := raw.strip(string.punctuation))]


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _text_matches(value: Any, text: str, mode: str) -> bool:
    """mode: "phrase" (contiguous words), "or"/"and" (any/all words), "exact" (keyword)."""
    if isinstance(value, bool):
        return text.strip().lower() == _as_text(value)
    if isinstance(value, int | float):
        return _number(text) == value
    if not isinstance(value, str):
        return False
    if mode == "exact":
        return value == text
    wanted, have = _words(text), _words(value)
    if not wanted:
        return value.strip().lower() == text.strip().lower()
    if mode == "or":
        return any(word in have for word in wanted)
    if mode == "and":
        return all(word in have for word in wanted)
    size = len(wanted)
    return any(have[i : i + size] == wanted for i in range(len(have) - size + 1))


def _term_equal(value: Any, wanted: Any, case_insensitive: bool = False) -> bool:
    if isinstance(value, bool) or isinstance(wanted, bool):
        return _as_text(value).lower() == _as_text(wanted).lower()
    if isinstance(value, int | float):
        return (float(wanted) if isinstance(wanted, int | float) else _number(str(wanted))) == value
    if not isinstance(value, str) or isinstance(wanted, dict | list):
        return False
    wanted = str(wanted)
    if value == wanted or (case_insensitive and value.lower() == wanted.lower()):
        return True
    if _ISO_PREFIX.match(value) and _ISO_PREFIX.match(wanted):
        return date_ms(value) is not None and date_ms(value) == date_ms(wanted)
    return False


def _range_check(bounds: dict[str, Any]) -> Callable[[Any], bool]:
    """A value test for gte/gt/lte/lt bounds: numeric (numbers and dates) or lexical (other strings)."""
    tests: list[tuple[Callable[[Any, Any], bool], Any, bool]] = []
    for op, raw in bounds.items():
        if raw is None:
            continue
        number = to_number(raw)
        tests.append((_COMPARE[op], number if number is not None else str(raw), number is not None))

    def check(value: Any) -> bool:
        for compare, bound, numeric in tests:
            if numeric:
                subject: Any = to_number(value)
            else:
                subject = value if isinstance(value, str) else None
            if subject is None or not compare(subject, bound):
                return False
        return True

    return check


def _on_fields(fields: list[str] | None, test: Callable[[str, Any], bool]) -> Predicate:
    """Any value of any field (None: every leaf of the document) passes `test(field, value)`."""
    if fields is None:
        return lambda doc: any(test("", value) for value in _leaves(doc))
    return lambda doc: any(test(field, value) for field in fields for value in field_values(doc, field))


def _text_mode(field: str, mode: str) -> str:
    return "exact" if field.endswith(".keyword") else mode


# ---------------------------------------------------------------- queries


def compile_query(query: Any) -> Predicate:
    """Turn a query clause into a predicate over a document's _source (validating it all up front)."""
    if not isinstance(query, dict) or len(query) != 1:
        raise _parsing(f"a query must be an object with exactly one clause, got {query!r}")
    ((kind, spec),) = query.items()
    builder = _QUERIES.get(kind)
    if builder is None:
        raise _parsing(f"unknown query [{kind}] (not supported by the fake)")
    return builder(spec)


def _single_field(kind: str, spec: Any) -> tuple[str, Any]:
    if not isinstance(spec, dict):
        raise _parsing(f"[{kind}] expects an object")
    fields = {key: value for key, value in spec.items() if key not in ("boost", "_name")}
    if len(fields) != 1:
        raise _parsing(f"[{kind}] query expects exactly one field, got {sorted(fields)}")
    return next(iter(fields.items()))


def _bool(spec: Any) -> Predicate:
    allowed = {"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"}
    spec = _checked("bool", spec, allowed)

    def clauses(key: str) -> list[Predicate]:
        value = spec.get(key, [])
        return [compile_query(clause) for clause in (value if isinstance(value, list) else [value])]

    must, should, must_not = clauses("must") + clauses("filter"), clauses("should"), clauses("must_not")
    need = _minimum_should_match(spec.get("minimum_should_match"), len(should), 0 if must else 1)

    def match(doc: dict[str, Any]) -> bool:
        if not all(test(doc) for test in must) or any(test(doc) for test in must_not):
            return False
        return need <= 0 or sum(test(doc) for test in should) >= need

    return match


def _minimum_should_match(raw: Any, count: int, default: int) -> int:
    if raw is None:
        return min(default, count)
    text = str(raw).strip()
    if re.fullmatch(r"-?\d+", text):
        number = int(text)
        return count + number if number < 0 else number
    if re.fullmatch(r"-?\d+%", text):
        percent = int(text[:-1])
        return count - count * -percent // 100 if percent < 0 else count * percent // 100
    raise _parsing(f"[bool] minimum_should_match [{raw}] is not supported by the fake")


def _term(spec: Any) -> Predicate:
    field, value = _single_field("term", spec)
    insensitive = False
    if isinstance(value, dict):
        options = _checked("term", value, {"value", "boost", "case_insensitive", "_name"}, ("value",))
        value, insensitive = options["value"], bool(options.get("case_insensitive", False))
    return lambda doc: any(_term_equal(v, value, insensitive) for v in field_values(doc, field))


def _terms(spec: Any) -> Predicate:
    field, values = _single_field("terms", spec)
    if not isinstance(values, list):
        raise _parsing("[terms] expects a list of values (terms lookup is not supported by the fake)")
    return lambda doc: any(_term_equal(v, want) for v in field_values(doc, field) for want in values)


def _exists(spec: Any) -> Predicate:
    field = _checked("exists", spec, {"field", "boost", "_name"}, ("field",))["field"]
    return lambda doc: bool(field_values(doc, field))


def _match(spec: Any, phrase: bool = False) -> Predicate:
    kind = "match_phrase" if phrase else "match"
    field, value = _single_field(kind, spec)
    mode = "phrase" if phrase else "or"
    if isinstance(value, dict):
        allowed = {"query", "boost", "_name"} | (
            set() if phrase else {"operator", "lenient", "zero_terms_query"}
        )
        options = _checked(kind, value, allowed, ("query",))
        value = options["query"]
        mode = "phrase" if phrase else str(options.get("operator", "or")).lower()
        if mode not in ("or", "and"):
            raise _parsing(f"[match] operator [{mode}] is not supported")
    text = _as_text(value)
    return _on_fields([field], lambda f, v: _text_matches(v, text, _text_mode(f, mode)))


def _range(spec: Any) -> Predicate:
    field, options = _single_field("range", spec)
    allowed = {"gte", "gt", "lte", "lt", "format", "time_zone", "boost", "relation", "_name"}
    options = _checked("range", options, allowed)
    _utc_only("range", options.get("time_zone"))
    check = _range_check({op: options[op] for op in _COMPARE if op in options})
    return lambda doc: any(check(v) for v in field_values(doc, field))


def _utc_only(kind: str, zone: Any) -> None:
    if zone not in (None, "UTC", "Z", "+00:00", "Etc/UTC"):
        raise _parsing(f"[{kind}] time_zone [{zone}] is not supported by the fake (UTC only)")


def _match_all(spec: Any) -> Predicate:
    _checked("match_all", spec, {"boost", "_name"})
    return lambda doc: True


def _match_none(spec: Any) -> Predicate:
    _checked("match_none", spec, {"_name"})
    return lambda doc: False


def _query_string(spec: Any) -> Predicate:
    allowed = {"query", "default_field", "fields", "default_operator", "analyze_wildcard", "lenient"}
    spec = _checked("query_string", spec, allowed | {"allow_leading_wildcard", "boost", "_name"}, ("query",))
    fields: list[str] | None = spec.get("fields") or (
        [spec["default_field"]] if spec.get("default_field") else None
    )
    if fields is not None and "*" in fields:
        fields = None
    for field in fields or []:
        if "*" in field:
            raise _parsing(f"[query_string] field pattern [{field}] is not supported by the fake")
    default_operator = str(spec.get("default_operator", "OR")).upper()
    if default_operator not in ("AND", "OR"):
        raise _parsing(f"[query_string] default_operator [{default_operator}] is not supported")
    return QueryStringParser(str(spec["query"]), fields, default_operator == "AND").parse()


_QUERIES: dict[str, Callable[[Any], Predicate]] = {
    "match_all": _match_all,
    "match_none": _match_none,
    "bool": _bool,
    "term": _term,
    "terms": _terms,
    "exists": _exists,
    "match": _match,
    "match_phrase": lambda spec: _match(spec, phrase=True),
    "range": _range,
    "query_string": _query_string,
}


# ---------------------------------------------------------------- query_string


class QueryStringParser:
    """Lucene-style query string to predicate; see the module docstring for the subset."""

    _RANGE = re.compile(r'([\[{])\s*("[^"]*"|[^\s\]}]+)\s+TO\s+("[^"]*"|[^\s\]}]+)\s*([\]}])')
    _COMPARISON = re.compile(r"(>=|<=|>|<)(.+)")

    def __init__(self, text: str, fields: list[str] | None, default_and: bool) -> None:
        self.text, self.fields, self.default_and = text, fields, default_and
        self.tokens = self._lex(text)
        self.pos = 0

    def error(self, what: str) -> EsError:
        return EsError(400, "query_shard_exception", f"Failed to parse query [{self.text}]: {what}")

    def _lex(self, text: str) -> list[tuple[str, Any]]:
        tokens: list[tuple[str, Any]] = []
        i = 0
        while i < len(text):
            char, after_field = text[i], bool(tokens) and tokens[-1][0] == "FIELD"
            if char.isspace():
                i += 1
            elif char in "()":
                tokens.append((char, None))
                i += 1
            elif text.startswith(("&&", "||"), i):
                tokens.append(("AND" if char == "&" else "OR", None))
                i += 2
            elif char in "+-!" and not after_field:
                tokens.append(("+" if char == "+" else "NOT", None))
                i += 1
            elif char == '"':
                end = i + 1
                while end < len(text) and text[end] != '"':
                    end += 2 if text[end] == "\\" else 1
                if end >= len(text):
                    raise self.error("unterminated quoted phrase")
                tokens.append(("PHRASE", re.sub(r"\\(.)", r"\1", text[i + 1 : end])))
                i = self._suffix(text, end + 1)
            elif char in "[{":
                found = self._RANGE.match(text, i)
                if not found:
                    raise self.error(f"malformed range at position {i}")
                low, high = (bound.strip('"') for bound in (found[2], found[3]))
                tokens.append(("RANGE", (low, high, found[1] == "[", found[4] == "]")))
                i = found.end()
            elif char == "/":
                raise _parsing(f"query_string regular expressions are not supported by the fake: [{text}]")
            else:
                i = self._lex_word(text, i, tokens, after_field)
        return tokens

    def _lex_word(self, text: str, i: int, tokens: list[tuple[str, Any]], after_field: bool) -> int:
        chars: list[tuple[str, bool]] = []  # (character, escaped)
        start = i
        while i < len(text) and not text[i].isspace() and text[i] not in '()"':
            if text[i] == "\\" and i + 1 < len(text):
                chars.append((text[i + 1], True))
                i += 2
                continue
            if text[i] == ":" and not after_field:
                break
            chars.append((text[i], False))
            i += 1
        word = "".join(char for char, _ in chars)
        if i < len(text) and text[i] == ":" and not after_field:
            if not word:
                raise self.error("empty field name")
            tokens.append(("FIELD", word))
            return i + 1
        if word in ("AND", "OR", "NOT") and text[start:i] == word:
            tokens.append((word, None))
            return i
        boost = re.search(r"\^\d+(\.\d+)?$", word)
        if boost:
            chars, word = chars[: boost.start()], word[: boost.start()]
        if "~" in word:
            raise _parsing(f"query_string fuzzy/proximity [{word}] is not supported by the fake")
        wildcard = any(char in "*?" and not escaped for char, escaped in chars)
        pattern = "".join(
            (".*" if char == "*" else ".") if char in "*?" and not escaped else re.escape(char)
            for char, escaped in chars
        )
        tokens.append(("TERM", (word, re.compile(pattern, re.IGNORECASE | re.DOTALL) if wildcard else None)))
        return i

    def _suffix(self, text: str, i: int) -> int:
        boost = re.match(r"\^\d+(\.\d+)?", text[i:])
        if boost:
            i += boost.end()
        if text.startswith("~", i):
            raise _parsing(f"query_string proximity [{text}] is not supported by the fake")
        return i

    def _peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def _next(self) -> tuple[str, Any]:
        if self.pos >= len(self.tokens):
            raise self.error("unexpected end of query")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def parse(self) -> Predicate:
        if not self.tokens:
            return lambda doc: False
        result = self._or(None)
        if self.pos != len(self.tokens):
            raise self.error(f"unexpected [{self.tokens[self.pos][0]}]")
        return result

    def _or(self, field: str | None) -> Predicate:
        parts = [self._and(field)]
        while self._peek() == "OR":
            self.pos += 1
            parts.append(self._and(field))
        return parts[0] if len(parts) == 1 else lambda doc: any(part(doc) for part in parts)

    def _and(self, field: str | None) -> Predicate:
        parts = [self._group(field)]
        while self._peek() == "AND":
            self.pos += 1
            parts.append(self._group(field))
        return parts[0] if len(parts) == 1 else lambda doc: all(part(doc) for part in parts)

    def _group(self, field: str | None) -> Predicate:
        """Juxtaposed clauses, each optionally prefixed by + (required) or NOT/-/! (prohibited)."""
        required: list[Predicate] = []
        prohibited: list[Predicate] = []
        optional: list[Predicate] = []
        while self._peek() not in (None, ")", "AND", "OR"):
            target = optional
            if self._peek() in ("+", "NOT"):
                target = required if self._next()[0] == "+" else prohibited
            target.append(self._clause(field))
        if not (required or prohibited or optional):
            raise self.error("expected a clause")
        if self.default_and:
            required, optional = required + optional, []

        def match(doc: dict[str, Any]) -> bool:
            if any(test(doc) for test in prohibited) or not all(test(doc) for test in required):
                return False
            return bool(required) or not optional or any(test(doc) for test in optional)

        return match

    def _clause(self, field: str | None) -> Predicate:
        kind, value = self._next()
        if kind == "(":
            inner = self._or(field)
            if self._next()[0] != ")":
                raise self.error("expected )")
            return inner
        if kind == "FIELD":
            if value == "_exists_":
                kind, target = self._next()
                if kind != "TERM":
                    raise self.error("_exists_ needs a field name")
                return _exists({"field": target[0]})
            if "*" in value and value != "*":
                raise _parsing(f"query_string field pattern [{value}] is not supported by the fake")
            if self._peek() == "(":
                return self._clause(None if value == "*" else value)
            return self._value(None if value == "*" else value, *self._next())
        return self._value(field, kind, value)

    def _value(self, field: str | None, kind: str, value: Any) -> Predicate:
        fields = [field] if field else self.fields
        if kind == "PHRASE":
            return _on_fields(fields, lambda f, v: _text_matches(v, value, _text_mode(f, "phrase")))
        if kind == "RANGE":
            low, high, include_low, include_high = value
            bounds = {
                "gte" if include_low else "gt": None if low == "*" else low,
                "lte" if include_high else "lt": None if high == "*" else high,
            }
            check = _range_check(bounds)
            return _on_fields(fields, lambda f, v: check(v))
        if kind != "TERM":
            raise self.error(f"unexpected [{kind}]")
        word, wildcard = value
        if word == "*":
            return (
                (lambda doc: True)
                if fields is None
                else (lambda doc: any(field_values(doc, f) for f in fields))
            )
        comparison = self._COMPARISON.fullmatch(word)
        if comparison:
            op = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt"}[comparison[1]]
            check = _range_check({op: comparison[2]})
            return _on_fields(fields, lambda f, v: check(v))
        if wildcard is not None:
            return _on_fields(fields, lambda f, v: _wildcard_matches(wildcard, f, v))
        return _on_fields(fields, lambda f, v: _text_matches(v, word, _text_mode(f, "phrase")))


def _wildcard_matches(pattern: re.Pattern[str], field: str, value: Any) -> bool:
    text = _as_text(value)
    if field.endswith(".keyword"):
        return re.fullmatch(pattern.pattern, text, re.DOTALL) is not None
    return bool(pattern.fullmatch(text)) or any(pattern.fullmatch(word) for word in _words(text))


# ---------------------------------------------------------------- documents, hits, sorting


@dataclass
class Doc:
    index: str
    id: str
    source: dict[str, Any]
    seq: int


def _sort_spec(spec: Any) -> list[tuple[str, bool]]:
    """[(field, descending)] from "f", "f:desc", {"f": "desc"}, {"f": {"order": ...}} or a list of them."""
    result: list[tuple[str, bool]] = []
    for item in spec if isinstance(spec, list) else [spec]:
        if isinstance(item, str):
            field, _, order = item.partition(":")
            order = order or ("desc" if field == "_score" else "asc")
        elif isinstance(item, dict) and len(item) == 1:
            ((field, order),) = item.items()
            if isinstance(order, dict):
                allowed = {"order", "unmapped_type", "format", "numeric_type", "mode"}
                order = _checked("sort", order, allowed).get("order", "asc")
        else:
            raise _parsing(f"[sort] malformed sort {item!r}")
        if order not in ("asc", "desc"):
            raise _parsing(f"[sort] order [{order}] must be asc or desc")
        result.append((field, order == "desc"))
    return result


def _sort_value(doc: Doc, field: str, descending: bool) -> Any:
    """The value a doc sorts on (min ascending, max descending); dates as epoch millis; None if missing."""
    if field == "_doc":
        return (0, doc.seq)
    values: list[tuple[int, Any]] = []
    for value in field_values(doc.source, field):
        number = to_number(value)
        if number is not None:
            values.append((0, value if isinstance(value, int | float) else int(number)))
        elif isinstance(value, str):
            values.append((1, value))
    if not values:
        return None
    return max(values) if descending else min(values)


def sort_docs(docs: list[Doc], spec: list[tuple[str, bool]]) -> list[tuple[Doc, list[Any]]]:
    """Docs in sort order with their sort values; missing values sort last either way."""
    keyed = [(doc, [_sort_value(doc, f, desc) for f, desc in spec if f != "_score"]) for doc in docs]
    criteria = [desc for field, desc in spec if field != "_score"]
    for position in reversed(range(len(criteria))):
        descending = criteria[position]

        def key(item: tuple[Doc, list[Any]], position: int = position, descending: bool = descending) -> Any:
            value = item[1][position]
            return (value is not None, value) if descending else (value is None, value or (0, 0))

        keyed.sort(key=key, reverse=descending)
    return [(doc, [value[1] if value else None for value in values]) for doc, values in keyed]


def _source_filter(spec: Any) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    if spec is None or spec is True:
        return lambda source: source
    if spec is False:
        return lambda source: None
    if isinstance(spec, str | list):
        includes, excludes = ([spec] if isinstance(spec, str) else spec), []
    else:
        options = _checked("_source", spec, {"includes", "excludes", "include", "exclude"})
        includes = options.get("includes", options.get("include", []))
        excludes = options.get("excludes", options.get("exclude", []))
    return lambda source: _pick(source, list(includes), list(excludes), "")


def _pick(node: dict[str, Any], includes: list[str], excludes: list[str], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = prefix + key
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in excludes):
            continue
        included = not includes or any(fnmatch.fnmatchcase(path, pattern) for pattern in includes)
        if isinstance(value, dict):
            picked = _pick(value, [] if included else includes, excludes, path + ".")
            if picked or included:
                out[key] = picked
        elif included:
            out[key] = value
    return out


def render_hits(
    docs: list[Doc], size: int, offset: int, sort: Any, source: Any, total: Any
) -> dict[str, Any]:
    spec = _sort_spec(sort) if sort is not None else []
    ordered = sort_docs(docs, spec) if spec else [(doc, []) for doc in docs]
    pick = _source_filter(source)
    hits = []
    for doc, values in ordered[offset : offset + size]:
        hit: dict[str, Any] = {"_index": doc.index, "_id": doc.id, "_score": None if spec else 1.0}
        picked = pick(doc.source)
        if picked is not None:
            hit["_source"] = picked
        if spec:
            hit["sort"] = values
        hits.append(hit)
    result: dict[str, Any] = {}
    if total is not False:
        limit = 10_000 if total is None or total is True else int(total)
        exact = total is True or len(docs) <= limit
        result["total"] = {"value": len(docs) if exact else limit, "relation": "eq" if exact else "gte"}
    result["max_score"] = 1.0 if hits and not spec else None
    result["hits"] = hits
    return result


# ---------------------------------------------------------------- aggregations


@dataclass
class Agg:
    name: str
    kind: str
    evaluate: Callable[[list[Doc]], dict[str, Any]]
    meta: Any = None


def compile_aggs(spec: Any) -> list[Agg]:
    if not isinstance(spec, dict):
        raise _parsing(f"aggregations must be an object, got {spec!r}")
    aggs = []
    for name, body in spec.items():
        if not isinstance(body, dict):
            raise _parsing(f"Expected [START_OBJECT] under aggregation [{name}]")
        kinds = [key for key in body if key not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise _parsing(f"Expected exactly one aggregation type for [{name}], found {kinds}")
        kind = kinds[0]
        if kind not in _AGGS:
            raise _parsing(f"Unknown aggregation type [{kind}] for [{name}] (not supported by the fake)")
        sub = compile_aggs(body.get("aggs", body.get("aggregations", {})))
        if sub and kind in _METRICS:
            raise _illegal(f"Aggregator [{name}] of type [{kind}] cannot accept sub-aggregations")
        aggs.append(Agg(name, kind, _AGGS[kind](body[kind], sub), body.get("meta")))
    return aggs


def run_aggs(aggs: list[Agg], docs: list[Doc]) -> dict[str, Any]:
    results = {}
    for agg in aggs:
        result = agg.evaluate(docs)
        results[agg.name] = {**result, "meta": agg.meta} if agg.meta is not None else result
    return results


def _bucket(docs: list[Doc], sub: list[Agg], **fields: Any) -> dict[str, Any]:
    return {**fields, "doc_count": len(docs), **run_aggs(sub, docs)}


def _filter_agg(params: Any, sub: list[Agg]) -> Callable[[list[Doc]], dict[str, Any]]:
    test = compile_query(params)
    return lambda docs: _bucket([doc for doc in docs if test(doc.source)], sub)


def _filters_agg(params: Any, sub: list[Agg]) -> Callable[[list[Doc]], dict[str, Any]]:
    allowed = {"filters", "other_bucket", "other_bucket_key", "keyed"}
    params = _checked("filters", params, allowed, ("filters",))
    named = isinstance(params["filters"], dict)
    items = sorted(params["filters"].items()) if named else list(enumerate(params["filters"]))
    tests = [(key, compile_query(query)) for key, query in items]
    other_key = params.get("other_bucket_key")
    other = bool(params.get("other_bucket", other_key is not None))
    keyed = bool(params.get("keyed", named))

    def evaluate(docs: list[Doc]) -> dict[str, Any]:
        buckets = [(key, [doc for doc in docs if test(doc.source)]) for key, test in tests]
        if other:
            rest = [doc for doc in docs if not any(test(doc.source) for _, test in tests)]
            buckets.append((other_key or "_other_", rest))
        if keyed:
            return {"buckets": {str(key): _bucket(inside, sub) for key, inside in buckets}}
        return {"buckets": [_bucket(inside, sub, **({"key": k} if named else {})) for k, inside in buckets]}

    return evaluate


def _range_agg(params: Any, sub: list[Agg], dates: bool) -> Callable[[list[Doc]], dict[str, Any]]:
    kind = "date_range" if dates else "range"
    params = _checked(kind, params, {"field", "ranges", "keyed", "format", "time_zone"}, ("field", "ranges"))
    _utc_only(kind, params.get("time_zone"))
    field, keyed = params["field"], bool(params.get("keyed", False))
    shown = format_ms if dates else (lambda number: str(number))
    ranges = []
    for spec in params["ranges"]:
        spec = _checked(f"{kind}.ranges", spec, {"from", "to", "key"})
        bounds = []
        for side in ("from", "to"):
            raw = spec.get(side)
            bound = None if raw is None else to_number(raw)
            if raw is not None and bound is None:
                raise EsError(
                    400, "parse_exception", f"failed to parse [{raw}] as a {kind} bound of [{field}]"
                )
            bounds.append(bound)
        low, high = bounds
        key = spec.get("key") or (
            f"{'*' if low is None else shown(low)}-{'*' if high is None else shown(high)}"
        )
        ranges.append((low, high, str(key)))
    ranges.sort(
        key=lambda r: (-float("inf") if r[0] is None else r[0], float("inf") if r[1] is None else r[1])
    )

    def evaluate(docs: list[Doc]) -> dict[str, Any]:
        values = [
            (doc, [n for v in field_values(doc.source, field) if (n := to_number(v)) is not None])
            for doc in docs
        ]
        buckets = []
        for low, high, key in ranges:
            inside = [
                doc
                for doc, numbers in values
                if any((low is None or n >= low) and (high is None or n < high) for n in numbers)
            ]
            fields: dict[str, Any] = {} if keyed else {"key": key}
            if low is not None:
                fields["from"] = low
                if dates:
                    fields["from_as_string"] = format_ms(low)
            if high is not None:
                fields["to"] = high
                if dates:
                    fields["to_as_string"] = format_ms(high)
            buckets.append((key, _bucket(inside, sub, **fields)))
        return {"buckets": dict(buckets) if keyed else [bucket for _, bucket in buckets]}

    return evaluate


def _bucket_key(value: Any) -> tuple[Any, Any]:
    """(key, key_as_string or None) of a terms bucket; booleans give 1/0 and "true"/"false" as in ES."""
    if isinstance(value, bool):
        return int(value), _as_text(value)
    return value, None


def _order_key(key: Any) -> tuple[int, Any]:
    return (0, key) if isinstance(key, int | float) else (1, str(key))


def _terms_agg(params: Any, sub: list[Agg]) -> Callable[[list[Doc]], dict[str, Any]]:
    allowed = {"field", "size", "order", "min_doc_count", "missing", "shard_size", "execution_hint"}
    params = _checked("terms", params, allowed | {"show_term_doc_count_error"}, ("field",))
    field, size = params["field"], int(params.get("size", 10))
    min_count, missing = int(params.get("min_doc_count", 1)), params.get("missing")
    order = params.get("order", [{"_count": "desc"}])
    criteria: list[tuple[str, bool]] = []
    for item in order if isinstance(order, list) else [order]:
        if not isinstance(item, dict) or len(item) != 1:
            raise _parsing(f"[terms] malformed order {item!r}")
        ((path, direction),) = item.items()
        if path not in ("_count", "_key") and path not in {agg.name for agg in sub}:
            raise _illegal(f"Invalid aggregation order path [{path}] (not supported by the fake)")
        if direction not in ("asc", "desc"):
            raise _parsing(f"[terms] order direction [{direction}] must be asc or desc")
        criteria.append((path, direction == "desc"))
    criteria.append(("_key", False))

    def sort_value(bucket: dict[str, Any], path: str) -> Any:
        if path == "_count":
            return bucket["doc_count"]
        if path == "_key":
            return _order_key(bucket["key"])
        result = bucket[path]
        value = result.get("value", result.get("doc_count"))
        return (0, value) if value is not None else (1, 0)

    def evaluate(docs: list[Doc]) -> dict[str, Any]:
        groups: dict[Any, tuple[Any, list[Doc]]] = {}
        for doc in docs:
            values = field_values(doc.source, field) or ([] if missing is None else [missing])
            seen = set()
            for value in values:
                if isinstance(value, dict | list):
                    continue
                key, as_string = _bucket_key(value)
                if key not in seen:
                    seen.add(key)
                    groups.setdefault(key, (as_string, []))[1].append(doc)
        buckets = []
        for key, (as_string, inside) in groups.items():
            if len(inside) >= min_count:
                extra = {"key_as_string": as_string} if as_string is not None else {}
                buckets.append(_bucket(inside, sub, key=key, **extra))
        for path, descending in reversed(criteria):
            buckets.sort(key=functools.partial(sort_value, path=path), reverse=descending)
        other = sum(bucket["doc_count"] for bucket in buckets[size:])
        return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets[:size]}

    return evaluate


def _interval_ms(params: dict[str, Any]) -> int:
    calendar = {"minute": "1m", "1m": "1m", "hour": "1h", "1h": "1h", "day": "1d", "1d": "1d"}
    if "calendar_interval" in params:
        text = calendar.get(str(params["calendar_interval"]))
        if text is None:
            raise _parsing(f"[date_histogram] calendar_interval [{params['calendar_interval']}] unsupported")
    else:
        text = str(params.get("fixed_interval", ""))
    found = re.fullmatch(r"(\d+)(ms|[smhd])", text)
    if not found or int(found[1]) <= 0:
        raise _parsing(f"[date_histogram] needs fixed_interval like 1m, 5m, 1h (got [{text}])")
    return int(found[1]) * _UNIT_MS[found[2]]


def _date_histogram_agg(params: Any, sub: list[Agg]) -> Callable[[list[Doc]], dict[str, Any]]:
    allowed = {"field", "fixed_interval", "calendar_interval", "min_doc_count", "extended_bounds"}
    params = _checked("date_histogram", params, allowed | {"format", "time_zone", "keyed"}, ("field",))
    _utc_only("date_histogram", params.get("time_zone"))
    if params.get("format", "strict_date_optional_time") not in (
        "strict_date_optional_time",
        "date_optional_time",
    ):
        raise _parsing(f"[date_histogram] format [{params['format']}] is not supported by the fake")
    field, interval = params["field"], _interval_ms(params)
    min_count, keyed = int(params.get("min_doc_count", 0)), bool(params.get("keyed", False))
    extended = _checked("extended_bounds", params.get("extended_bounds", {}), {"min", "max"})
    limits = [to_number(extended[side]) for side in ("min", "max") if side in extended]
    if any(limit is None for limit in limits):
        raise _parsing(f"[date_histogram] cannot parse extended_bounds {extended}")

    def evaluate(docs: list[Doc]) -> dict[str, Any]:
        groups: dict[int, list[Doc]] = {}
        for doc in docs:
            keys = {
                int(n) // interval * interval
                for v in field_values(doc.source, field)
                if (n := to_number(v)) is not None
            }
            for key in keys:
                groups.setdefault(key, []).append(doc)
        if min_count == 0 and (groups or limits):
            span = list(groups) + [int(limit) // interval * interval for limit in limits if limit is not None]
            for key in range(min(span), max(span) + 1, interval):
                groups.setdefault(key, [])
        buckets = [
            _bucket(groups[key], sub, key_as_string=format_ms(key), key=key)
            for key in sorted(groups)
            if len(groups[key]) >= min_count
        ]
        if keyed:
            return {"buckets": {bucket["key_as_string"]: bucket for bucket in buckets}}
        return {"buckets": buckets}

    return evaluate


def _metric_agg(kind: str) -> Callable[[Any, list[Agg]], Callable[[list[Doc]], dict[str, Any]]]:
    def build(params: Any, sub: list[Agg]) -> Callable[[list[Doc]], dict[str, Any]]:
        field = _checked(kind, params, {"field", "format", "precision_threshold"}, ("field",))["field"]

        def evaluate(docs: list[Doc]) -> dict[str, Any]:
            values = [value for doc in docs for value in field_values(doc.source, field)]
            if kind == "value_count":
                return {"value": len(values)}
            if kind == "cardinality":
                return {"value": len({json.dumps(value, sort_keys=True) for value in values})}
            numbers = [to_number(value) for value in values]
            if any(number is None for number in numbers):
                raise _illegal(f"Field [{field}] of type [keyword] is not supported for aggregation [{kind}]")
            found = [number for number in numbers if number is not None]
            if kind == "sum":
                return {"value": float(sum(found))}
            result = {
                "min": min(found, default=None),
                "max": max(found, default=None),
                "avg": sum(found) / len(found) if found else None,
            }[kind]
            if result is not None and any(_is_date_string(value) for value in values):
                return {"value": result, "value_as_string": format_ms(result)}
            return {"value": result}

        return evaluate

    return build


def _top_hits_agg(params: Any, sub: list[Agg]) -> Callable[[list[Doc]], dict[str, Any]]:
    params = _checked("top_hits", params, {"size", "from", "sort", "_source"})
    size, offset = int(params.get("size", 3)), int(params.get("from", 0))
    sort, source = params.get("sort"), params.get("_source")
    if sort is not None:
        _sort_spec(sort)
    return lambda docs: {"hits": render_hits(docs, size, offset, sort, source, True)}


_METRICS = {"value_count", "min", "max", "avg", "sum", "cardinality", "top_hits"}
_AGGS: dict[str, Callable[[Any, list[Agg]], Callable[[list[Doc]], dict[str, Any]]]] = {
    "filter": _filter_agg,
    "filters": _filters_agg,
    "range": lambda params, sub: _range_agg(params, sub, dates=False),
    "date_range": lambda params, sub: _range_agg(params, sub, dates=True),
    "terms": _terms_agg,
    "date_histogram": _date_histogram_agg,
    "top_hits": _top_hits_agg,
    **{kind: _metric_agg(kind) for kind in _METRICS - {"top_hits"}},
}


# ---------------------------------------------------------------- the server


_SEARCH_KEYS = {
    "query",
    "aggs",
    "aggregations",
    "size",
    "from",
    "sort",
    "track_total_hits",
    "_source",
    "timeout",
}
_PARAMS = {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "q", "df", "default_operator"}
_PARAMS |= {"size", "from", "track_total_hits", "rest_total_hits_as_int", "sort", "_source", "timeout"}
_PARAMS |= {"pretty", "human", "error_trace", "request_cache", "preference", "max_concurrent_searches"}
_PARAMS |= {"_source_includes", "_source_excludes"}


class FakeElasticsearch:
    """See the module docstring. `requests` records {"method", "path", "params", "body"} of each request."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self._indices: dict[str, list[Doc]] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeElasticsearch:
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_documents(self, index: str, docs: list[dict[str, Any]]) -> None:
        """Append documents (copied) to `index`, creating it; a document's "_id" key becomes its id."""
        with self._lock:
            stored = self._indices.setdefault(index, [])
            for doc in docs:
                source = json.loads(json.dumps(doc))
                doc_id = str(source.pop("_id", len(stored) + 1))
                stored.append(Doc(index, doc_id, source, len(stored)))

    def clear(self) -> None:
        """Forget every index, recorded request and `fail_with`."""
        with self._lock:
            self._indices.clear()
            self.requests.clear()
            self.fail_with = None

    # -------------------------------------------------------- request handling

    def handle(self, method: str, target: str, raw: bytes) -> tuple[int, Any]:
        split = urlsplit(target)
        path, params = split.path, dict(parse_qsl(split.query, keep_blank_values=True))
        try:
            body = self._parse_body(path, raw)
        except EsError as error:
            self._record(method, path, params, None)
            return error.status, error.body()
        self._record(method, path, params, body)
        if self.fail_with is not None:
            reason = f"simulated outage: HTTP {self.fail_with}"
            return self.fail_with, EsError(self.fail_with, "status_exception", reason).body()
        try:
            return 200, self._route(method, path, params, body)
        except EsError as error:
            return error.status, error.body()
        except Exception as error:  # a bug in the fake: answer 500 instead of hanging the client
            return 500, EsError(500, "exception", f"fake elasticsearch failed: {error!r}").body()

    def _record(self, method: str, path: str, params: dict[str, str], body: Any) -> None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "params": params, "body": body})

    @staticmethod
    def _parse_body(path: str, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            if path.endswith("/_msearch"):
                return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
            return json.loads(raw)
        except ValueError as error:
            raise EsError(400, "x_content_parse_exception", f"malformed request body: {error}") from error

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> Any:
        parts = [unquote(part) for part in path.split("/") if part]
        unknown = sorted(set(params) - _PARAMS)
        if unknown:
            raise _illegal(f"request [{path}] contains unrecognized parameter: [{unknown[0]}]")
        if not parts and method in ("GET", "HEAD"):
            return None if method == "HEAD" else self._info()
        if len(parts) == 1 and method == "HEAD" and not parts[0].startswith("_"):
            self._resolve(parts[0], {"allow_no_indices": "false"})
            return None
        endpoint = parts[-1] if parts else ""
        if len(parts) in (1, 2) and endpoint in ("_search", "_count", "_msearch"):
            if method not in ("GET", "POST"):
                raise EsError(405, "method_not_allowed", f"Incorrect HTTP method for uri [{path}]: {method}")
            index = parts[0] if len(parts) == 2 else None
            if endpoint == "_search":
                return self._search(index, body, params)
            if endpoint == "_count":
                return self._count(index, body, params)
            return self._msearch(index, body, params)
        raise _illegal(f"no handler found for uri [{path}] and method [{method}] (not supported by the fake)")

    @staticmethod
    def _info() -> dict[str, Any]:
        version = {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "fake",
            "build_date": "2025-07-17T00:00:00.000Z",
            "build_snapshot": False,
            "lucene_version": "10.2.2",
            "minimum_wire_compatibility_version": "8.19.0",
            "minimum_index_compatibility_version": "8.0.0",
        }
        return {
            "name": "fake-es-node",
            "cluster_name": "fake-elasticsearch",
            "cluster_uuid": "fake-cluster-uuid",
            "version": version,
            "tagline": "You Know, for Search",
        }

    def _resolve(self, expression: str | None, params: dict[str, Any]) -> tuple[list[str], list[Doc]]:
        """Index names and their documents for "a,b,logs-*,-logs-old" (None, _all, * = every index)."""
        ignore_unavailable = str(params.get("ignore_unavailable", "false")).lower() == "true"
        allow_no_indices = str(params.get("allow_no_indices", "true")).lower() == "true"
        with self._lock:
            indices = {name: list(docs) for name, docs in self._indices.items()}
        names: list[str] = []
        for part in ("*" if expression in (None, "_all") else str(expression)).split(","):
            part = part.strip()
            if part.startswith("-") and names:
                names = [name for name in names if not fnmatch.fnmatchcase(name, part[1:])]
            elif "*" in part or "?" in part:
                visible = [
                    name for name in sorted(indices) if part.startswith(".") or not name.startswith(".")
                ]
                matched = [name for name in visible if fnmatch.fnmatchcase(name, part)]
                if not matched and not allow_no_indices:
                    raise self._not_found(part)
                names += [name for name in matched if name not in names]
            elif part in indices:
                names += [part] if part not in names else []
            elif not ignore_unavailable:
                raise self._not_found(part)
        return names, [doc for name in names for doc in indices[name]]

    @staticmethod
    def _not_found(index: str) -> EsError:
        extra = {
            "resource.type": "index_or_alias",
            "resource.id": index,
            "index_uuid": "_na_",
            "index": index,
        }
        return EsError(404, "index_not_found_exception", f"no such index [{index}]", **extra)

    @staticmethod
    def _query(body: dict[str, Any], params: dict[str, Any]) -> Predicate:
        if "q" in params:
            spec: dict[str, Any] = {"query": params["q"]}
            if "df" in params:
                spec["default_field"] = params["df"]
            if "default_operator" in params:
                spec["default_operator"] = params["default_operator"]
            return compile_query({"query_string": spec})
        return compile_query(body.get("query", {"match_all": {}}))

    def _search(self, index: str | None, body: Any, params: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        body = _checked("search", body if body is not None else {}, _SEARCH_KEYS)
        if "aggs" in body and "aggregations" in body:
            raise _parsing("Found two aggregation definitions: use [aggs] or [aggregations], not both")
        test = self._query(body, params)
        aggs = compile_aggs(body.get("aggs", body.get("aggregations", {})))
        option = {key: params.get(key, body.get(key)) for key in ("size", "from", "sort", "_source")}
        if "_source" in params:
            raw_source = params["_source"]
            option["_source"] = (
                raw_source == "true" if raw_source in ("true", "false") else raw_source.split(",")
            )
        sides = [side for side in ("includes", "excludes") if f"_source_{side}" in params]
        if sides:
            option["_source"] = {side: params[f"_source_{side}"].split(",") for side in sides}
        size, offset = int(option["size"] if option["size"] is not None else 10), int(option["from"] or 0)
        if size < 0 or offset < 0:
            raise _illegal("[size] and [from] must be >= 0")
        total = body.get("track_total_hits")
        if "track_total_hits" in params:
            raw = params["track_total_hits"]
            total = raw == "true" if raw in ("true", "false") else int(raw)
        sort = option["sort"]
        if isinstance(sort, str) and "sort" in params:
            sort = sort.split(",")
        names, docs = self._resolve(index, params)
        matched = [doc for doc in docs if test(doc.source)]
        hits = render_hits(matched, size, offset, sort, option["_source"], total)
        if params.get("rest_total_hits_as_int") == "true" and "total" in hits:
            hits["total"] = hits["total"]["value"]
        response: dict[str, Any] = {
            "took": 0,
            "timed_out": False,
            "_shards": {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0},
            "hits": hits,
        }
        if aggs:
            response["aggregations"] = run_aggs(aggs, matched)
        response["took"] = int((time.monotonic() - started) * 1000)
        return response

    def _count(self, index: str | None, body: Any, params: dict[str, Any]) -> dict[str, Any]:
        body = _checked("count", body if body is not None else {}, {"query"})
        test = self._query(body, params)
        names, docs = self._resolve(index, params)
        shards = {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0}
        return {"count": sum(1 for doc in docs if test(doc.source)), "_shards": shards}

    def _msearch(self, index: str | None, body: Any, params: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        lines = body or []
        if len(lines) % 2:
            raise _illegal("msearch body must be pairs of header and search lines")
        responses = []
        for header, search in zip(lines[0::2], lines[1::2], strict=True):
            header = _checked("msearch header", header, {"index", "ignore_unavailable", "allow_no_indices"})
            target = header.get("index", index)
            if isinstance(target, list):
                target = ",".join(target)
            options = {key: str(value).lower() for key, value in header.items() if key != "index"}
            try:
                responses.append({**self._search(target, search, options), "status": 200})
            except EsError as error:
                responses.append(error.body())
        return {"took": int((time.monotonic() - started) * 1000), "responses": responses}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            raw = b"".join(chunks)
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def _serve(self, method: str) -> None:
        status, payload = self.server.fake.handle(method, self.path, self._read_body())
        data = b"" if payload is None or method == "HEAD" else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests` instead
        pass


class _Server(ThreadingHTTPServer):
    """Tracks connections so stop() can cut keep-alive ones and join their threads (no leaked sockets)."""

    daemon_threads = True

    def __init__(self, fake: FakeElasticsearch) -> None:
        self.fake = fake
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections.items())
        for connection, _ in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            thread.join(timeout=5)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-request is not a test failure
