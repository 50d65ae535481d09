"""The fake Elasticsearch evaluates what the real `elasticsearch` client sends.

Every expected number is counted by hand from the documents below; the comments name the documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

from tests.fakes.elasticsearch import CONTENT_TYPE, FakeElasticsearch


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def fraud(
    doc_id: str, ts: Any, level: str = "info", status: int | None = 200, **extra: Any
) -> dict[str, Any]:
    doc = {"_id": doc_id, "@timestamp": ts, "service": "fraud-model", "event": "prediction", "level": level}
    if status is not None:
        doc["http"] = {"status": status}
    return doc | extra


# "Now" is 2026-11-25T10:00Z. Windows: 5m = [09:55, 10:00), 1h = [09:00, 10:00); the whole query also
# keeps [2026-10-26T10:00Z, 2026-11-25T10:00Z), service fraud-model and event prediction.
# "bad" = level error (any case) or http.status >= 500.
FRAUD: list[dict[str, Any]] = [
    fraud("f1", "2026-11-25T09:56:00Z"),  # 5m, 1h
    fraud("f2", "2026-11-25T09:57:30.500Z", "error"),  # 5m, 1h, bad
    fraud("f3", "2026-11-25T10:58:00+01:00", status=503),  # = 09:58Z: 5m, 1h, bad
    fraud("f4", "2026-11-25T09:59:59.999Z", "warn", 500),  # 5m, 1h, bad
    fraud("f5", "2026-11-25T10:00:00.000Z", "error", 500),  # excluded: lt 10:00
    fraud("f6", "2026-11-25T09:55:00Z"),  # 5m (from is inclusive), 1h
    fraud("f7", ms("2026-11-25T09:30:00+00:00"), "error"),  # epoch millis: 1h, bad
    fraud("f8", "2026-11-25T09:10:00+01:00", "error", 502),  # = 08:10Z: in no window, bad
    fraud("f9", "2026-11-25T09:45:00Z", "error", 500, event="training"),  # excluded: event
    fraud("f10", "2026-11-25T09:58:00Z", "error", 500, service="fraud-model-shadow"),  # excluded: service
    fraud("f11", "2026-11-25T09:58:30Z", "ERROR", None),  # 5m, 1h, bad (no http at all)
    fraud("f12", "2026-10-20T10:00:00Z", "error", 500),  # excluded: before the 30 days
    fraud("f13", "2026-11-01T12:00:00Z"),  # in no window
    fraud("f14", "2026-11-25T09:20:00Z", status=None) | {"http.status": 504},  # dotted key: 1h, bad
    fraud("f15", "2026-11-25T09:54:59.999Z", "error", 500),  # 1h (just before 5m), bad
    fraud("f16", "2026-11-25T09:59:00Z", status=499),  # 5m, 1h, not bad (499 < 500)
    fraud("f17", "2026-11-25T09:00:00Z"),  # 1h (from is inclusive), not before 09:00
]
# Matching the whole query: f1 f2 f3 f4 f6 f7 f8 f11 f13 f14 f15 f16 f17 = 13.
PAYMENTS: list[dict[str, Any]] = [
    {"@timestamp": "2026-11-25T09:58:00Z", "service": "payments", "level": "error", "http": {"status": 500}},
    {"@timestamp": "2026-11-25T09:59:00Z", "service": "payments", "level": "info", "http": {"status": 200}},
]
WEB: list[dict[str, Any]] = [
    {"_id": "w1", "level": "error", "service": "checkout", "http": {"status": 500},
     "message": "Payment gateway timeout", "region": "eu"},
    {"_id": "w2", "level": "ERROR", "service": "checkout", "http": {"status": 502},
     "message": "upstream connect error", "region": "us"},
    {"_id": "w3", "level": "info", "service": "checkout", "http": {"status": 200},
     "message": "order placed", "region": "eu"},
    {"_id": "w4", "level": "warn", "service": "search", "http": {"status": 404},
     "message": "no results for query", "region": "us"},
    {"_id": "w5", "level": "info", "service": "search-indexer", "http": {"status": 200},
     "message": "Indexed 12 documents"},
    {"_id": "w6", "level": "error", "service": "search", "message": "Index corrupted: error reading segment"},
    {"_id": "w7", "level": "debug", "service": "checkout", "http.status": 599,
     "message": "retrying payment", "region": "eu", "tags": ["retry", "payment"]},
    {"_id": "w8", "level": "info", "service": "auth", "http": {"status": 401},
     "message": "token expired", "region": "ap", "user": {"name": "Ann O'Neil"}},
]  # fmt: skip

SLOGUARD_QUERY = {
    "bool": {
        "filter": [
            {"query_string": {"query": "service:fraud-model AND event:prediction"}},
            {
                "range": {
                    "@timestamp": {
                        "gte": "2026-10-26T10:00:00.000Z",
                        "lt": "2026-11-25T10:00:00.000Z",
                        "format": "strict_date_optional_time",
                    }
                }
            },
        ]
    }
}
BAD = {"query_string": {"query": "level:error OR http.status:>=500"}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeElasticsearch]:
    with FakeElasticsearch() as server:
        server.add_documents("logs-fraud", FRAUD)
        server.add_documents("logs-payments", PAYMENTS)
        server.add_documents("web", WEB)
        yield server


@pytest.fixture(scope="module")
def es(fake: FakeElasticsearch) -> Iterator[Elasticsearch]:
    with Elasticsearch(fake.url) as client:
        yield client


def count(es: Elasticsearch, query: dict[str, Any], index: str = "web") -> int:
    result: int = es.count(index=index, query=query)["count"]
    return result


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["_id"] for hit in hits]


def test_info_ping_and_headers(fake: FakeElasticsearch, es: Elasticsearch) -> None:
    info = es.info()
    assert info["version"]["number"] == "9.1.0"
    assert info["tagline"] == "You Know, for Search"
    assert info["name"] and info["cluster_name"]
    assert es.ping() is True
    ok = httpx.get(fake.url + "/")
    assert ok.headers["x-elastic-product"] == "Elasticsearch"
    assert ok.headers["content-type"] == CONTENT_TYPE
    missing = httpx.post(fake.url + "/nope/_search", json={})
    assert missing.status_code == 404
    assert missing.headers["content-type"] == CONTENT_TYPE
    assert missing.json()["status"] == 404
    assert missing.json()["error"]["type"] == "index_not_found_exception"
    assert missing.json()["error"]["reason"] == "no such index [nope]"


def test_the_sloguard_window_query(fake: FakeElasticsearch, es: Elasticsearch) -> None:
    aggs = {
        "windows": {
            "date_range": {
                "field": "@timestamp",
                "keyed": True,
                "ranges": [
                    {"key": "5m", "from": "2026-11-25T09:55:00.000Z", "to": "2026-11-25T10:00:00.000Z"},
                    {"key": "1h", "from": "2026-11-25T09:00:00.000Z", "to": "2026-11-25T10:00:00.000Z"},
                ],
            },
            "aggs": {"bad": {"filter": BAD}},
        }
    }
    response = es.search(index="logs-fraud", size=0, track_total_hits=False, query=SLOGUARD_QUERY, aggs=aggs)
    assert response["hits"]["hits"] == []
    assert "total" not in response["hits"]
    buckets = response["aggregations"]["windows"]["buckets"]
    # 5m: f1 f2 f3 f4 f6 f11 f16; bad among them: f2 f3 f4 f11.
    assert buckets["5m"]["doc_count"] == 7
    assert buckets["5m"]["bad"]["doc_count"] == 4
    # 1h: the 5m seven plus f7 f14 f15 f17; bad: f2 f3 f4 f11 f7 f14 f15.
    assert buckets["1h"]["doc_count"] == 11
    assert buckets["1h"]["bad"]["doc_count"] == 7
    assert buckets["5m"]["from"] == float(ms("2026-11-25T09:55:00+00:00"))
    assert buckets["5m"]["to"] == float(ms("2026-11-25T10:00:00+00:00"))
    assert buckets["5m"]["from_as_string"] == "2026-11-25T09:55:00.000Z"
    assert buckets["5m"]["to_as_string"] == "2026-11-25T10:00:00.000Z"
    assert "key" not in buckets["5m"]
    assert fake.requests[-1]["method"] == "POST"
    assert fake.requests[-1]["path"] == "/logs-fraud/_search"
    assert fake.requests[-1]["body"]["aggs"] == aggs
    assert count(es, SLOGUARD_QUERY, "logs-fraud") == 13


def test_range_bounds_as_epoch_millis(es: Elasticsearch) -> None:
    bounds = {"gte": ms("2026-10-26T10:00:00+00:00"), "lt": ms("2026-11-25T10:00:00+00:00")}
    query = {"bool": {"filter": [SLOGUARD_QUERY["bool"]["filter"][0], {"range": {"@timestamp": bounds}}]}}
    assert count(es, query, "logs-fraud") == 13
    as_strings = {key: str(value) for key, value in bounds.items()} | {"format": "epoch_millis"}
    query["bool"]["filter"][1] = {"range": {"@timestamp": as_strings}}
    assert count(es, query, "logs-fraud") == 13
    # lte instead of lt takes f5 (exactly 10:00) too.
    inclusive = {"range": {"@timestamp": {"gte": "2026-10-26T10:00:00Z", "lte": "2026-11-25T10:00:00Z"}}}
    query["bool"]["filter"][1] = inclusive
    assert count(es, query, "logs-fraud") == 14


def test_unkeyed_date_range_sorts_and_names_buckets(es: Elasticsearch) -> None:
    ranges = [{"from": "2026-11-25T09:55:00Z"}, {"to": ms("2026-11-25T09:00:00+00:00")}]
    aggs = {"r": {"date_range": {"field": "@timestamp", "ranges": ranges}}}
    buckets = es.search(index="logs-fraud", size=0, query=SLOGUARD_QUERY, aggs=aggs)["aggregations"]["r"]
    # Before 09:00: f8 (08:10Z) and f13 (Nov 1), not f17 (to is exclusive).
    # From 09:55: f1 f2 f3 f4 f6 f11 f16.
    assert buckets["buckets"] == [
        {
            "key": "*-2026-11-25T09:00:00.000Z",
            "to": float(ms("2026-11-25T09:00:00+00:00")),
            "to_as_string": "2026-11-25T09:00:00.000Z",
            "doc_count": 2,
        },
        {
            "key": "2026-11-25T09:55:00.000Z-*",
            "from": float(ms("2026-11-25T09:55:00+00:00")),
            "from_as_string": "2026-11-25T09:55:00.000Z",
            "doc_count": 7,
        },
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("level:error", 3),  # w1 w2 (ERROR) w6
        ("level.keyword:ERROR", 1),  # w2: .keyword is exact and case-sensitive
        ("service:search", 2),  # w4 w6, not search-indexer
        ("service:search*", 3),  # w4 w5 w6
        ("service:sea?ch", 2),  # w4 w6
        (r"service:search\-indexer", 1),  # w5
        ("http.status:500", 1),  # w1
        ("http.status:>=500", 3),  # w1 w2 w7 (dotted key)
        ("http.status:>500", 2),  # w2 w7
        ("http.status:<300", 2),  # w3 w5
        ("http.status:<=401", 3),  # w3 w5 w8
        ("http.status:[400 TO 500]", 3),  # w4 w8 w1
        ("http.status:{401 TO 500}", 1),  # w4
        ("http.status:{401 TO 500]", 2),  # w4 w1
        ("http.status:[500 TO *]", 3),  # w1 w2 w7
        ("level:error OR http.status:>=500", 4),  # w1 w2 w6 w7
        ("level:error AND http.status:>=500", 2),  # w1 w2
        ("level:error && region:eu", 1),  # w1
        ("level:error || level:warn", 4),  # w1 w2 w6 w4
        ("service:checkout AND NOT level:error", 2),  # w3 w7
        ("service:checkout -level:error", 2),  # w3 w7
        ("NOT region:eu", 5),  # all but w1 w3 w7, docs without region included
        ("!region:eu", 5),
        ("NOT (level:info OR level:debug)", 4),  # w1 w2 w4 w6
        ("(service:search OR service:auth) AND level:info", 1),  # w8
        ("service:(search OR auth)", 3),  # w4 w6 w8
        ("level:error service:search", 4),  # default OR: w1 w2 w6 + w4
        ("+service:checkout level:error", 4),  # required checkout, error optional: w1 w2 w3 w7
        ("+service:checkout +level:error", 2),  # w1 w2
        ('message:"payment gateway"', 1),  # w1
        ('message:"gateway payment"', 0),  # order matters in a phrase
        ("message:Indexed", 1),  # w5, case-insensitive
        ("message:12", 1),  # w5
        ("message:corrupted", 1),  # w6: "corrupted:" loses its colon
        ('user.name:"ann o\'neil"', 1),  # w8
        ("timeout", 1),  # bare term, any field: w1
        ("error", 3),  # w1 w2 w6
        ("retry", 1),  # w7 tags ("retrying" is another word)
        ("tags:payment", 1),  # w7
        ("_exists_:region", 6),  # all but w5 w6
        ("_exists_:http.status", 7),  # all but w6
        ("region:*", 6),
        ("*", 8),
        ("", 0),
    ],
)
def test_query_string(es: Elasticsearch, query: str, expected: int) -> None:
    assert count(es, {"query_string": {"query": query}}) == expected


def test_query_string_options(es: Elasticsearch) -> None:
    both = "level:error service:search"
    assert count(es, {"query_string": {"query": both, "default_operator": "AND"}}) == 1  # w6
    assert count(es, {"query_string": {"query": "checkout"}}) == 4  # service of w1 w2 w3 w7
    assert count(es, {"query_string": {"query": "checkout", "default_field": "message"}}) == 0
    assert count(es, {"query_string": {"query": "payment", "fields": ["message"]}}) == 2  # w1 w7
    assert es.count(index="web", q="level:error")["count"] == 3


@pytest.mark.parametrize(
    "query",
    ["level:(error", 'message:"abc', "level:error AND", "level:error)", "message:/time.*/", "level:erro~"],
)
def test_query_string_errors_are_400(es: Elasticsearch, query: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        es.count(index="web", query={"query_string": {"query": query}})
    assert raised.value.body["error"]["type"] in ("query_shard_exception", "parsing_exception")


def test_bool(es: Elasticsearch) -> None:
    level_error = {"term": {"level": "error"}}  # exact: w1 w6
    region_eu = {"term": {"region": "eu"}}  # w1 w3 w7
    checkout = {"term": {"service.keyword": "checkout"}}  # w1 w2 w3 w7
    assert count(es, {"bool": {}}) == 8
    assert count(es, {"bool": {"should": [level_error, region_eu]}}) == 4  # w1 w3 w6 w7
    assert count(es, {"bool": {"should": [level_error, region_eu], "minimum_should_match": 2}}) == 1
    assert count(es, {"bool": {"should": [level_error, region_eu], "minimum_should_match": "100%"}}) == 1
    assert count(es, {"bool": {"should": [level_error, region_eu], "minimum_should_match": "-1"}}) == 4
    # With a filter, should is optional ...
    assert count(es, {"bool": {"filter": [checkout], "should": [level_error, region_eu]}}) == 4
    # ... unless minimum_should_match says otherwise: w1 w3 w7 (w2 is "ERROR" in "us").
    query = {"bool": {"filter": checkout, "should": [level_error, region_eu], "minimum_should_match": 1}}
    assert count(es, query) == 3
    assert count(es, {"bool": {"must_not": [{"exists": {"field": "http.status"}}]}}) == 1  # w6
    # match is case-insensitive: w1 w2 w6, minus eu w1.
    assert count(es, {"bool": {"must": {"match": {"level": "error"}}, "must_not": region_eu}}) == 2


def test_term_terms_exists_match_range(es: Elasticsearch) -> None:
    assert count(es, {"term": {"service.keyword": "search"}}) == 2  # w4 w6
    assert count(es, {"term": {"service": "Search"}}) == 0
    assert count(es, {"term": {"service": {"value": "Search", "case_insensitive": True}}}) == 2
    assert count(es, {"term": {"http.status": "500"}}) == 1  # w1
    assert count(es, {"terms": {"http.status": [500, 502, 599]}}) == 3  # w1 w2 w7
    assert count(es, {"exists": {"field": "region"}}) == 6
    assert count(es, {"exists": {"field": "user"}}) == 1  # w8, an object
    assert count(es, {"match": {"message": "payment timeout"}}) == 2  # w1 w7
    assert count(es, {"match": {"message": {"query": "payment timeout", "operator": "and"}}}) == 1  # w1
    assert count(es, {"match": {"level": "ERROR"}}) == 3  # w1 w2 w6
    assert count(es, {"match_phrase": {"message": "connect error"}}) == 1  # w2
    assert count(es, {"range": {"http.status": {"gte": 400, "lt": 500}}}) == 2  # w4 w8
    assert count(es, {"range": {"http.status": {"gt": 401, "lte": 502}}}) == 3  # w4 w1 w2


def test_terms_with_top_hits(es: Elasticsearch) -> None:
    aggs = {"services": {"terms": {"field": "service.keyword", "size": 2}}}
    services = es.search(index="web", size=0, aggs=aggs)["aggregations"]["services"]
    assert [(b["key"], b["doc_count"]) for b in services["buckets"]] == [("checkout", 4), ("search", 2)]
    assert services["sum_other_doc_count"] == 2  # auth, search-indexer
    levels = es.search(index="web", size=0, aggs={"l": {"terms": {"field": "level"}}})["aggregations"]["l"]
    # Count desc, then key asc in byte order ("ERROR" < "debug").
    expected = [("info", 3), ("error", 2), ("ERROR", 1), ("debug", 1), ("warn", 1)]
    assert [(b["key"], b["doc_count"]) for b in levels["buckets"]] == expected
    evidence = {
        "signatures": {
            "terms": {"field": "service.keyword", "size": 5},
            "aggs": {
                "example": {
                    "top_hits": {
                        "size": 1,
                        "sort": [{"http.status": {"order": "desc"}}],
                        "_source": ["message"],
                    }
                }
            },
        }
    }
    query = {"query_string": {"query": "level:error"}}  # w1 w2 w6
    buckets = es.search(index="web", size=0, query=query, aggs=evidence)["aggregations"]["signatures"][
        "buckets"
    ]
    assert [(b["key"], b["doc_count"]) for b in buckets] == [("checkout", 2), ("search", 1)]
    top = buckets[0]["example"]["hits"]
    assert top["total"] == {"value": 2, "relation": "eq"}
    assert top["hits"] == [
        {
            "_index": "web",
            "_id": "w2",
            "_score": None,
            "_source": {"message": "upstream connect error"},
            "sort": [502],
        }
    ]
    assert ids(buckets[1]["example"]["hits"]["hits"]) == ["w6"]  # no http.status: sorted last, still there


def test_filters_and_metrics(es: Elasticsearch) -> None:
    aggs: dict[str, Any] = {
        "groups": {
            "filters": {
                "filters": {
                    "errors": {"query_string": {"query": "level:error"}},
                    "eu": {"term": {"region": "eu"}},
                },
                "other_bucket_key": "rest",
            }
        },
        "statuses": {"value_count": {"field": "http.status"}},
        "lowest": {"min": {"field": "http.status"}},
        "highest": {"max": {"field": "http.status"}},
        "total": {"sum": {"field": "http.status"}},
        "mean": {"avg": {"field": "http.status"}},
        "regions": {"cardinality": {"field": "region"}},
    }
    result = es.search(index="web", size=0, aggregations=aggs)["aggregations"]
    # errors: w1 w2 w6; eu: w1 w3 w7; neither: w4 w5 w8.
    assert result["groups"]["buckets"] == {
        "errors": {"doc_count": 3},
        "eu": {"doc_count": 3},
        "rest": {"doc_count": 3},
    }
    # Statuses 500 502 200 404 200 599 401 (w6 has none).
    assert result["statuses"] == {"value": 7}
    assert result["lowest"] == {"value": 200.0}
    assert result["highest"] == {"value": 599.0}
    assert result["total"] == {"value": 2806.0}
    assert result["mean"]["value"] == pytest.approx(2806 / 7)
    assert result["regions"] == {"value": 3}  # eu us ap


def test_date_histogram(es: Elasticsearch) -> None:
    hour = {"range": {"@timestamp": {"gte": "2026-11-25T09:00:00Z", "lt": "2026-11-25T10:00:00Z"}}}
    query = {"bool": {"filter": [SLOGUARD_QUERY["bool"]["filter"][0], hour]}}  # the 1h eleven
    histogram: dict[str, Any] = {"field": "@timestamp", "fixed_interval": "10m"}
    aggs = {"per": {"date_histogram": histogram, "aggs": {"bad": {"filter": BAD}}}}
    buckets = es.search(index="logs-fraud", size=0, query=query, aggs=aggs)["aggregations"]["per"]["buckets"]
    # 09:00 f17; 09:10 none (filled); 09:20 f14; 09:30 f7; 09:40 none; 09:50 f1 f2 f3 f4 f6 f11 f15 f16
    # (bad: f2 f3 f4 f11 f15).
    assert [(b["key_as_string"], b["doc_count"], b["bad"]["doc_count"]) for b in buckets] == [
        ("2026-11-25T09:00:00.000Z", 1, 0),
        ("2026-11-25T09:10:00.000Z", 0, 0),
        ("2026-11-25T09:20:00.000Z", 1, 1),
        ("2026-11-25T09:30:00.000Z", 1, 1),
        ("2026-11-25T09:40:00.000Z", 0, 0),
        ("2026-11-25T09:50:00.000Z", 8, 5),
    ]
    assert buckets[0]["key"] == ms("2026-11-25T09:00:00+00:00")
    histogram["extended_bounds"] = {"min": "2026-11-25T08:40:00Z", "max": "2026-11-25T10:05:00Z"}
    buckets = es.search(index="logs-fraud", size=0, query=query, aggs=aggs)["aggregations"]["per"]["buckets"]
    assert [b["doc_count"] for b in buckets] == [0, 0, 1, 0, 1, 1, 0, 8, 0]  # 08:40 ... 10:00
    histogram["min_doc_count"] = 1
    buckets = es.search(index="logs-fraud", size=0, query=query, aggs=aggs)["aggregations"]["per"]["buckets"]
    assert [b["doc_count"] for b in buckets] == [1, 1, 1, 8]


def test_hits_sort_size_and_total(es: Elasticsearch) -> None:
    latest = es.search(index="logs-fraud", query=SLOGUARD_QUERY, size=3, sort=[{"@timestamp": "desc"}])
    assert latest["hits"]["total"] == {"value": 13, "relation": "eq"}
    assert ids(latest["hits"]["hits"]) == ["f4", "f16", "f11"]
    assert latest["hits"]["hits"][0]["sort"] == [ms("2026-11-25T09:59:59.999+00:00")]
    assert latest["hits"]["hits"][0]["_source"]["level"] == "warn"
    oldest = es.search(index="logs-fraud", query=SLOGUARD_QUERY, size=2, sort="@timestamp:asc")
    assert ids(oldest["hits"]["hits"]) == ["f13", "f8"]  # Nov 1, then 08:10Z written as +01:00
    second = es.search(index="logs-fraud", query=SLOGUARD_QUERY, size=1, from_=1, sort={"@timestamp": "asc"})
    assert ids(second["hits"]["hits"]) == ["f8"]
    default = es.search(index="web")
    assert len(default["hits"]["hits"]) == 8 and default["hits"]["hits"][0]["_index"] == "web"
    untracked = es.search(index="web", size=1, track_total_hits=False)
    assert "total" not in untracked["hits"] and len(untracked["hits"]["hits"]) == 1
    aggs = {"first": {"min": {"field": "@timestamp"}}, "last": {"max": {"field": "@timestamp"}}}
    spread = es.search(index="logs-fraud", size=0, query=SLOGUARD_QUERY, aggs=aggs)["aggregations"]
    assert spread["first"]["value_as_string"] == "2026-11-01T12:00:00.000Z"  # f13
    assert spread["last"]["value_as_string"] == "2026-11-25T09:59:59.999Z"  # f4


def test_index_resolution(es: Elasticsearch) -> None:
    assert es.count(index="logs-*")["count"] == 19  # 17 fraud + 2 payments
    assert es.count(index="logs-fraud,web")["count"] == 25
    assert es.count(index="logs-*,-logs-payments")["count"] == 17
    assert es.count(index="nomatch-*")["count"] == 0
    assert es.count(index="missing", ignore_unavailable=True)["count"] == 0
    # level error in any case: f2 f5 f7 f8 f9 f10 f11 f12 f15, and one payments doc.
    assert es.count(index="logs-*", q="level:error")["count"] == 10
    with pytest.raises(NotFoundError) as raised:
        es.search(index="missing", size=0)
    assert raised.value.body["error"]["type"] == "index_not_found_exception"
    with pytest.raises(NotFoundError):
        es.count(index="nomatch-*", allow_no_indices=False)
    assert es.indices.exists(index="web")
    assert not es.indices.exists(index="missing")


def test_msearch(fake: FakeElasticsearch, es: Elasticsearch) -> None:
    searches: list[dict[str, Any]] = [
        {},
        {"size": 0, "query": {"query_string": {"query": "level:error"}}},  # web: 3
        {"index": "logs-fraud"},
        {"size": 0, "query": {"term": {"service": "fraud-model-shadow"}}},  # f10
        {"index": "missing"},
        {"query": {"match_all": {}}},
    ]
    responses = es.msearch(index="web", searches=searches)["responses"]
    assert responses[0]["hits"]["total"]["value"] == 3 and responses[0]["status"] == 200
    assert responses[1]["hits"]["total"]["value"] == 1
    assert responses[2]["status"] == 404
    assert responses[2]["error"]["type"] == "index_not_found_exception"
    assert fake.requests[-1]["path"] == "/web/_msearch"
    assert fake.requests[-1]["body"] == searches


@pytest.mark.parametrize(
    ("query", "aggs", "named"),
    [
        ({"fuzzy": {"message": "eror"}}, None, "fuzzy"),
        ({"bool": {"must": [{"regexp": {"level": "err.*"}}]}}, None, "regexp"),
        ({"range": {"http.status": {"gte": 1, "from": 2}}}, None, "from"),
        ({"match_all": {}}, {"p": {"percentiles": {"field": "http.status"}}}, "percentiles"),
        ({"match_all": {}}, {"t": {"terms": {"field": "level", "include": "e.*"}}}, "include"),
        (
            {"match_all": {}},
            {"m": {"max": {"field": "x"}, "aggs": {"c": {"value_count": {"field": "x"}}}}},
            "max",
        ),
        ({"match_all": {}}, {"m": {"min": {"field": "message"}}}, "message"),
    ],
)
def test_unsupported_is_400_naming_it(
    es: Elasticsearch, query: dict[str, Any], aggs: dict[str, Any] | None, named: str
) -> None:
    with pytest.raises(BadRequestError) as raised:
        es.search(index="web", size=0, query=query, aggs=aggs)
    error = raised.value.body["error"]
    assert error["type"] in ("parsing_exception", "illegal_argument_exception")
    assert named in error["reason"]


def test_fail_with_and_clean_stop() -> None:
    with FakeElasticsearch() as fake, Elasticsearch(fake.url) as es:
        fake.add_documents("web", WEB)
        assert es.count(index="web")["count"] == 8
        fake.fail_with = 500
        with pytest.raises(ApiError) as raised:
            es.count(index="web")
        assert raised.value.meta.status == 500
        assert len(fake.requests) == 2
        fake.fail_with = 503  # the client retries 502/503/504 three times before giving up
        with pytest.raises(ApiError) as raised:
            es.count(index="web")
        assert raised.value.meta.status == 503
        assert len(fake.requests) == 6
        fake.fail_with = None
        assert es.count(index="web")["count"] == 8
        fake.stop()  # with the client's keep-alive connection still open
        fake.stop()
