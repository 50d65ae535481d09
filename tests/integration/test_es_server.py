"""The Elasticsearch stand-in answers the real client correctly (counts derived by hand)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch, NotFoundError

from tests.es_server import FakeElasticsearch

pytestmark = pytest.mark.integration

DOCS = [
    {
        "@timestamp": "2026-11-25T10:00:00Z",
        "level": "error",
        "event": "prediction",
        "http": {"status": 500},
        "error": {"type": "Timeout"},
    },
    {"@timestamp": "2026-11-25T10:01:00Z", "level": "info", "event": "prediction", "http": {"status": 200}},
    {
        "@timestamp": "2026-11-25T10:02:00Z",
        "level": "info",
        "event": "prediction",
        "http": {"status": 503},
        "error": {"type": "Unavailable"},
    },
    {
        "@timestamp": "2026-11-25T10:03:00Z",
        "level": "error",
        "event": "health",
        "http": {"status": 500},
        "error": {"type": "Timeout"},
    },
    {
        "@timestamp": "2026-11-25T10:09:59Z",
        "level": "ERROR",
        "event": "prediction",
        "http": {"status": 500},
        "error": {"type": "Timeout"},
    },
]


@pytest.fixture
def es() -> Iterator[Elasticsearch]:
    with FakeElasticsearch() as server:
        server.add_documents("logs-fraud-model-2026.11.25", DOCS)
        client = Elasticsearch(server.url)
        yield client
        client.close()


def count(es: Elasticsearch, query: str) -> int:
    result: int = es.count(index="logs-*", query={"query_string": {"query": query}})["count"]
    return result


def test_query_string(es: Elasticsearch) -> None:
    assert count(es, "event:prediction") == 4
    assert count(es, "event:prediction AND level:error") == 2  # case-insensitive: "ERROR" too
    assert count(es, "event:prediction AND (level:error OR http.status:>=500)") == 3
    assert count(es, "http.status:[500 TO 502]") == 3
    assert count(es, "http.status:{500 TO 503]") == 1
    assert count(es, "NOT event:prediction") == 1
    assert count(es, "-level:info") == 3
    assert count(es, "_exists_:error.type AND error.type:Time*") == 3
    assert count(es, "Unavailable") == 1  # bare word: any field


def test_date_range_with_filter_sub_aggregation(es: Elasticsearch) -> None:
    response = es.search(
        index="logs-fraud-model-*",
        size=0,
        query={"bool": {"filter": [{"query_string": {"query": "event:prediction"}}]}},
        aggs={
            "windows": {
                "date_range": {
                    "field": "@timestamp",
                    "keyed": True,
                    "ranges": [
                        {"key": "5m", "from": "2026-11-25T10:05:00.000Z", "to": "2026-11-25T10:10:00.000Z"},
                        {"key": "10m", "from": "2026-11-25T10:00:00.000Z", "to": "2026-11-25T10:10:00.000Z"},
                    ],
                },
                "aggs": {"part": {"filter": {"query_string": {"query": "level:error"}}}},
            }
        },
    )
    buckets = response["aggregations"]["windows"]["buckets"]
    assert (buckets["5m"]["doc_count"], buckets["5m"]["part"]["doc_count"]) == (1, 1)
    assert (buckets["10m"]["doc_count"], buckets["10m"]["part"]["doc_count"]) == (4, 2)  # "to" is exclusive


def test_terms_with_top_hits(es: Elasticsearch) -> None:
    response = es.search(
        index="logs-*",
        size=0,
        aggs={
            "errors": {
                "terms": {"field": "error.type", "size": 5},
                "aggs": {"sample": {"top_hits": {"size": 1}}},
            }
        },
    )
    buckets = response["aggregations"]["errors"]["buckets"]
    assert [(b["key"], b["doc_count"]) for b in buckets] == [("Timeout", 3), ("Unavailable", 1)]
    assert buckets[1]["sample"]["hits"]["hits"][0]["_source"]["http"]["status"] == 503


def test_unknown_index_and_unknown_clause(es: Elasticsearch) -> None:
    with pytest.raises(NotFoundError):
        es.search(index="nope", query={"match_all": {}})
    from elasticsearch import BadRequestError

    with pytest.raises(BadRequestError, match="unknown query"):
        es.search(index="logs-*", query={"fuzzy": {"level": "eror"}})
