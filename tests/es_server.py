"""A local stand-in for Elasticsearch's REST API, for the real `elasticsearch` client to talk to.

No Elasticsearch server package exists on the registries this project can reach, so the tests run this
instead. It stores the documents a test loads and evaluates the queries and aggregations sent (the
subset sloguard uses): a wrong query gives a wrong answer, and an unsupported clause is a 400, never a
silent match-all.

Supported: match_all, bool (must/filter/should/must_not, minimum_should_match), term, terms, match,
exists, range (numbers and dates) and query_string (field:value, "phrases", bare words, AND/OR/NOT,
&&/||/!, -term, parentheses, field:>=n and friends, [a TO b] / {a TO b}, trailing-* wildcards,
_exists_:field); aggregations filter, filters, date_range, terms, date_histogram, value_count, min, max,
top_hits. Strings match case-insensitively, as a whole value or as one of their words.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.servers import free_port

HEADERS = {
    "X-Elastic-Product": "Elasticsearch",
    "Content-Type": "application/vnd.elasticsearch+json;compatible-with=9",
}


class BadRequest(Exception):
    def __init__(self, kind: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.kind, self.reason, self.status = kind, reason, status


def field_value(doc: dict[str, Any], path: str) -> Any:
    path = path.removesuffix(".keyword")
    if path in doc:
        return doc[path]
    current: Any = doc
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def to_millis(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000


def iso(millis: float) -> str:
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(millis % 1000):03d}Z"


def _is_date(value: Any) -> bool:
    return isinstance(value, str) and bool(re.match(r"^\d{4}-\d{2}-\d{2}", value))


def comparable(doc_value: Any, bound: Any) -> tuple[Any, Any] | None:
    """Put a document value and a bound on one scale (numbers, or dates as epoch millis)."""
    if doc_value is None:
        return None
    if _is_date(doc_value) or _is_date(bound):
        return to_millis(doc_value), to_millis(bound)
    try:
        return float(doc_value), float(bound)
    except (TypeError, ValueError):
        return str(doc_value), str(bound)


def values_equal(doc_value: Any, wanted: Any, analysed: bool) -> bool:
    values = doc_value if isinstance(doc_value, list) else [doc_value]
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool) or isinstance(wanted, bool):
            if str(value).lower() == str(wanted).lower():
                return True
        elif isinstance(value, int | float):
            try:
                if float(value) == float(wanted):
                    return True
            except (TypeError, ValueError):
                pass
        else:
            text, target = str(value).lower(), str(wanted).lower()
            if text == target:
                return True
            if analysed:
                words = re.findall(r"\w+", text)
                wanted_words = re.findall(r"\w+", target)
                if wanted_words and all(word in words for word in wanted_words):
                    return True
                if target.endswith("*") and any(w.startswith(target[:-1]) for w in [text, *words]):
                    return True
    return False


def in_range(doc_value: Any, spec: dict[str, Any]) -> bool:
    for op, bound in spec.items():
        if op in ("format", "time_zone", "boost"):
            continue
        if op not in ("gte", "gt", "lte", "lt"):
            raise BadRequest("parsing_exception", f"[range] query does not support [{op}]")
        pair = comparable(doc_value, bound)
        if pair is None:
            return False
        left, right = pair
        if not {"gte": left >= right, "gt": left > right, "lte": left <= right, "lt": left < right}[op]:
            return False
    return True


# ---------------------------------------------------------------- query_string

TOKEN = re.compile(
    r'\s*([^\s()"\[{]+:[\[{][^\]}]*[\]}]|\(|\)|&&|\|\||!|"[^"]*"|\[[^\]]*\]|\{[^}]*\}|[^\s()"]+(?:"[^"]*")?)'
)


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise BadRequest("query_shard_exception", f"Failed to parse query [{text}]")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class QueryString:
    def __init__(self, text: str, default_field: str | None, default_and: bool) -> None:
        self.tokens = _tokens(text)
        self.position = 0
        self.default_field = default_field
        self.default_and = default_and
        self.text = text

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> Any:
        node = self.parse_or()
        if self.peek() is not None:
            raise BadRequest("query_shard_exception", f"Failed to parse query [{self.text}]")
        return node

    def parse_or(self) -> Any:
        nodes = [self.parse_and()]
        while self.peek() in ("OR", "||"):
            self.take()
            nodes.append(self.parse_and())
        return ("or", nodes) if len(nodes) > 1 else nodes[0]

    def parse_and(self) -> Any:
        nodes = [self.parse_not()]
        while self.peek() is not None and self.peek() not in (")", "OR", "||"):
            explicit = self.peek() in ("AND", "&&")
            if explicit:
                self.take()
            node = self.parse_not()
            if explicit or self.default_and:
                nodes.append(node)
            else:
                nodes = [("or", [("and", nodes) if len(nodes) > 1 else nodes[0], node])]
        return ("and", nodes) if len(nodes) > 1 else nodes[0]

    def parse_not(self) -> Any:
        token = self.peek()
        if token in ("NOT", "!"):
            self.take()
            return ("not", self.parse_not())
        if token is not None and token.startswith("-") and len(token) > 1:
            self.tokens[self.position] = token[1:]
            return ("not", self.parse_not())
        return self.parse_atom()

    def parse_atom(self) -> Any:
        token = self.take()
        if token == "(":
            node = self.parse_or()
            if self.take() != ")":
                raise BadRequest("query_shard_exception", f"Failed to parse query [{self.text}]")
            return node
        field, value = None, token
        if ":" in token and not token.startswith('"'):
            field, _, value = token.partition(":")
            if value == "" and self.peek() is not None:
                value = self.take()
            if value == "(":
                inner = self.parse_or()
                self.take()
                return ("field_group", field, inner)
        return ("term", field or self.default_field, value)


def _match_term(doc: dict[str, Any], field: str | None, value: str) -> bool:
    if field == "_exists_":
        return field_value(doc, value) is not None
    fields = [field] if field else list(_flatten(doc))
    for name in fields:
        doc_value = field_value(doc, name)
        if doc_value is None:
            continue
        if value.startswith(("[", "{")) and " TO " in value:
            low, high = value[1:-1].split(" TO ")
            spec: dict[str, Any] = {}
            if low.strip() != "*":
                spec["gte" if value[0] == "[" else "gt"] = low.strip()
            if high.strip() != "*":
                spec["lte" if value[-1] == "]" else "lt"] = high.strip()
            if in_range(doc_value, spec):
                return True
            continue
        comparison = re.match(r"^(>=|<=|>|<)(.+)$", value)
        if comparison:
            op = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}[comparison.group(1)]
            if in_range(doc_value, {op: comparison.group(2)}):
                return True
            continue
        if values_equal(doc_value, value.strip('"'), analysed=True):
            return True
    return False


def _flatten(doc: dict[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        names += _flatten(value, f"{name}.") if isinstance(value, dict) else [name]
    return names


def _eval_qs(node: Any, doc: dict[str, Any]) -> bool:
    kind = node[0]
    if kind == "or":
        return any(_eval_qs(child, doc) for child in node[1])
    if kind == "and":
        return all(_eval_qs(child, doc) for child in node[1])
    if kind == "not":
        return not _eval_qs(node[1], doc)
    if kind == "field_group":
        return _eval_qs(_with_field(node[2], node[1]), doc)
    return _match_term(doc, node[1], node[2])


def _with_field(node: Any, field: str) -> Any:
    if node[0] == "term":
        return ("term", node[1] or field, node[2])
    if node[0] == "not":
        return ("not", _with_field(node[1], field))
    return (node[0], [_with_field(child, field) for child in node[1]])


# ---------------------------------------------------------------- queries


def matches(query: dict[str, Any] | None, doc: dict[str, Any]) -> bool:
    if not query:
        return True
    if len(query) != 1:
        raise BadRequest("parsing_exception", f"query malformed, expected one clause: {sorted(query)}")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        return _bool(spec, doc)
    if kind in ("term", "match"):
        ((field, wanted),) = spec.items()
        if isinstance(wanted, dict):
            wanted = wanted.get("value", wanted.get("query"))
        return values_equal(field_value(doc, field), wanted, analysed=kind == "match")
    if kind == "terms":
        ((field, wanted),) = ((k, v) for k, v in spec.items() if k != "boost")
        return any(values_equal(field_value(doc, field), value, analysed=False) for value in wanted)
    if kind == "exists":
        return field_value(doc, spec["field"]) is not None
    if kind == "range":
        ((field, bounds),) = spec.items()
        return in_range(field_value(doc, field), bounds)
    if kind == "query_string":
        parser = QueryString(
            spec["query"], spec.get("default_field"), spec.get("default_operator", "OR") == "AND"
        )
        return _eval_qs(parser.parse(), doc)
    raise BadRequest("parsing_exception", f"unknown query [{kind}]")


def _bool(spec: dict[str, Any], doc: dict[str, Any]) -> bool:
    def clauses(name: str) -> list[dict[str, Any]]:
        value = spec.get(name, [])
        return value if isinstance(value, list) else [value]

    unknown = set(spec) - {"must", "filter", "should", "must_not", "minimum_should_match", "boost"}
    if unknown:
        raise BadRequest("parsing_exception", f"[bool] query does not support {sorted(unknown)}")
    if not all(matches(c, doc) for c in clauses("must") + clauses("filter")):
        return False
    if any(matches(c, doc) for c in clauses("must_not")):
        return False
    should = clauses("should")
    if not should:
        return True
    needed = spec.get("minimum_should_match", 0 if clauses("must") or clauses("filter") else 1)
    return sum(matches(c, doc) for c in should) >= int(needed)


# ---------------------------------------------------------------- aggregations

INTERVAL = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def aggregate(aggs: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: _aggregation(spec, docs) for name, spec in aggs.items()}


def _aggregation(spec: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    sub = spec.get("aggs") or spec.get("aggregations") or {}
    kinds = [key for key in spec if key not in ("aggs", "aggregations", "meta")]
    if len(kinds) != 1:
        raise BadRequest("parsing_exception", f"expected one aggregation type, got {kinds}")
    kind, body = kinds[0], spec[kinds[0]]

    def bucket(selected: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {**extra, "doc_count": len(selected), **aggregate(sub, selected)}

    if kind == "filter":
        return bucket([doc for doc in docs if matches(body, doc["_source"])])
    if kind == "filters":
        named = {
            name: bucket([doc for doc in docs if matches(q, doc["_source"])])
            for name, q in body["filters"].items()
        }
        return {"buckets": named}
    if kind == "date_range":
        out = []
        for item in body["ranges"]:
            low = to_millis(item["from"]) if "from" in item else None
            high = to_millis(item["to"]) if "to" in item else None
            selected = [
                doc
                for doc in docs
                if (value := field_value(doc["_source"], body["field"])) is not None
                and (low is None or to_millis(value) >= low)
                and (high is None or to_millis(value) < high)
            ]
            extra: dict[str, Any] = {}
            if low is not None:
                extra |= {"from": low, "from_as_string": iso(low)}
            if high is not None:
                extra |= {"to": high, "to_as_string": iso(high)}
            key = item.get("key") or f"{extra.get('from_as_string', '*')}-{extra.get('to_as_string', '*')}"
            out.append(bucket(selected, key=key, **extra))
        if body.get("keyed"):
            return {"buckets": {b.pop("key"): b for b in out}}
        return {"buckets": out}
    if kind == "terms":
        groups: dict[Any, list[dict[str, Any]]] = {}
        for doc in docs:
            value = field_value(doc["_source"], body["field"])
            for item in value if isinstance(value, list) else [value]:
                if item is not None:
                    groups.setdefault(item, []).append(doc)
        ordered = sorted(groups.items(), key=lambda pair: (-len(pair[1]), str(pair[0])))
        size = int(body.get("size", 10))
        shown = ordered[:size]
        return {
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": sum(len(group) for _, group in ordered[size:]),
            "buckets": [bucket(group, key=key) for key, group in shown],
        }
    if kind == "date_histogram":
        interval = body.get("fixed_interval") or body.get("calendar_interval") or body.get("interval")
        match = re.fullmatch(r"(\d+)([smhd])", str(interval))
        if not match:
            raise BadRequest("illegal_argument_exception", f"unsupported interval [{interval}]")
        width = int(match.group(1)) * INTERVAL[match.group(2)]
        slots: dict[float, list[dict[str, Any]]] = {}
        for doc in docs:
            value = field_value(doc["_source"], body["field"])
            if value is not None:
                slots.setdefault(to_millis(value) // width * width, []).append(doc)
        return {"buckets": [bucket(slots[k], key=k, key_as_string=iso(k)) for k in sorted(slots)]}
    if kind in ("value_count", "min", "max"):
        values = [v for doc in docs if (v := field_value(doc["_source"], body["field"])) is not None]
        if kind == "value_count":
            return {"value": len(values)}
        if not values:
            return {"value": None}
        numbers = [to_millis(v) if _is_date(v) else float(v) for v in values]
        chosen = min(numbers) if kind == "min" else max(numbers)
        return {"value": chosen, **({"value_as_string": iso(chosen)} if _is_date(values[0]) else {})}
    if kind == "top_hits":
        selected = _sorted(docs, body.get("sort"))[: int(body.get("size", 3))]
        return {
            "hits": {"total": {"value": len(docs), "relation": "eq"}, "hits": [_hit(d) for d in selected]}
        }
    raise BadRequest("parsing_exception", f"unknown aggregation type [{kind}]")


def _sorted(docs: list[dict[str, Any]], sort: Any) -> list[dict[str, Any]]:
    if not sort:
        return list(docs)
    (field, order) = next(iter((sort[0] if isinstance(sort, list) else sort).items()))
    if isinstance(order, dict):
        order = order.get("order", "asc")
    return sorted(docs, key=lambda d: str(field_value(d["_source"], field)), reverse=order == "desc")


def _hit(doc: dict[str, Any]) -> dict[str, Any]:
    return {"_index": doc["_index"], "_id": doc["_id"], "_score": 1.0, "_source": doc["_source"]}


# ---------------------------------------------------------------- the server


class FakeElasticsearch:
    """`with FakeElasticsearch() as es:` serves on `es.url`; `es.add_documents(index, docs)` loads data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.indices: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add_documents(self, index: str, docs: list[dict[str, Any]]) -> None:
        with self._lock:
            stored = self.indices.setdefault(index, [])
            stored += [
                {"_index": index, "_id": str(len(stored) + i), "_source": d} for i, d in enumerate(docs)
            ]

    def _documents(self, pattern: str) -> list[dict[str, Any]]:
        found, missing = [], []
        for part in pattern.split(","):
            names = [name for name in self.indices if fnmatch(name, part)]
            if not names and "*" not in part:
                missing.append(part)
            for name in names:
                found += self.indices[name]
        if missing:
            raise BadRequest("index_not_found_exception", f"no such index [{missing[0]}]", 404)
        return found

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        docs = [d for d in self._documents(index) if matches(body.get("query"), d["_source"])]
        response: dict[str, Any] = {"took": 1, "timed_out": False, "_shards": {"total": 1, "successful": 1}}
        hits: dict[str, Any] = {
            "hits": [_hit(d) for d in _sorted(docs, body.get("sort"))[: int(body.get("size", 10))]]
        }
        if body.get("track_total_hits", True) is not False:
            hits["total"] = {"value": len(docs), "relation": "eq"}
        response["hits"] = hits
        aggs = body.get("aggs") or body.get("aggregations")
        if aggs:
            response["aggregations"] = aggregate(aggs, docs)
        return response

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        text = raw.decode("utf-8") if raw else ""
        body: Any = None
        if text.strip() and not path.endswith("_msearch"):
            body = json.loads(text)
        self.requests.append({"method": method, "path": path, "body": body})
        if self.fail_with is not None:
            return self.fail_with, {
                "error": {"type": "unavailable", "reason": "test outage"},
                "status": self.fail_with,
            }
        parts = [p for p in path.split("?")[0].split("/") if p]
        if not parts:
            info = {"name": "fake", "cluster_name": "sloguard-tests", "version": {"number": "9.1.0"}}
            return 200, {**info, "tagline": "You Know, for Search"}
        if parts[-1] == "_search":
            return 200, self.search(parts[0] if len(parts) == 2 else "*", body or {})
        if parts[-1] == "_count":
            docs = self._documents(parts[0] if len(parts) == 2 else "*")
            return 200, {"count": sum(matches((body or {}).get("query"), d["_source"]) for d in docs)}
        if parts[-1] == "_msearch":
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            responses = []
            for header, query in zip(lines[::2], lines[1::2], strict=True):
                index = header.get("index") or (parts[0] if len(parts) == 2 else "*")
                try:
                    responses.append({**self.search(index, query), "status": 200})
                except BadRequest as exc:
                    responses.append(_error(exc) | {"status": exc.status})
            return 200, {"took": 1, "responses": responses}
        raise BadRequest("illegal_argument_exception", f"unsupported endpoint [{method} {path}]")

    def __enter__(self) -> FakeElasticsearch:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    status, payload = fake.handle(self.command, self.path, raw)
                except BadRequest as exc:
                    status, payload = exc.status, _error(exc)
                except (ValueError, KeyError, TypeError) as exc:
                    status, payload = 400, _error(BadRequest("parsing_exception", repr(exc)))
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in HEADERS.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = do_PUT = _respond

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _error(exc: BadRequest) -> dict[str, Any]:
    return {
        "error": {
            "type": exc.kind,
            "reason": exc.reason,
            "root_cause": [{"type": exc.kind, "reason": exc.reason}],
        },
        "status": exc.status,
    }
