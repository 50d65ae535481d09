"""Evidence on an incident, from a real Prometheus, a real MLflow and the Elasticsearch stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlmodel import Session

from app import db
from app.config import DriftConfig, FileConfig, LogsConfig, ModelConfig, RegistryConfig
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate
from app.main import create_app
from app.ml import service as ml
from app.ml.models import DriftSignalRead
from app.sources.elasticsearch import ElasticsearchSource
from app.sources.mlflow import MlflowRegistry
from app.sources.prometheus import PrometheusSource
from tests.conftest import API_TOKEN, bearer, make_settings, personal_token
from tests.fakes.elasticsearch import FakeElasticsearch
from tests.mlflow_server import MlflowServer
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
STEP = 60


@pytest.fixture(scope="module")
def T() -> int:
    return aligned_now(STEP)


@pytest.fixture(scope="module")
def versions_prometheus(tmp_path_factory: pytest.TempPathFactory, T: int) -> Iterator[PrometheusServer]:
    """Version 3 serves 100 req/s cleanly for 8 hours; version 4 joins 50 minutes before T (40 minutes
    before the burn at T - 10m) with 50 req/s, 10 % of them failing."""
    folder = tmp_path_factory.mktemp("versions")
    start, v4_start = T - 8 * 3600, T - 50 * 60

    def counter(rate: float, since: int) -> Any:
        return lambda t: 1000 + max(0, t - since) * rate

    series = [
        Series(
            "http_requests_total",
            {"service": "fraud-model", "model_version": "3", "code": "200"},
            counter(100, start),
        ),
        Series(
            "http_requests_total",
            {"service": "fraud-model", "model_version": "3", "code": "500"},
            counter(0, start),
        ),
    ]
    write_openmetrics(folder / "v3.om", series, start, T, STEP)
    backfill(folder / "v3.om", folder / "data")
    v4 = [
        Series(
            "http_requests_total",
            {"service": "fraud-model", "model_version": "4", "code": "200"},
            counter(45, v4_start),
        ),
        Series(
            "http_requests_total",
            {"service": "fraud-model", "model_version": "4", "code": "500"},
            counter(5, v4_start),
        ),
    ]
    write_openmetrics(folder / "v4.om", v4, v4_start, T, STEP)
    backfill(folder / "v4.om", folder / "data")
    server = PrometheusServer(folder / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    server.register("fraud-detector", 4)
    server.api(
        "POST",
        "registered-models/alias",
        json={"name": "fraud-detector", "alias": "champion", "version": "4"},
    )
    yield server
    server.stop()


RNG = np.random.default_rng(42)
REFERENCE = {name: RNG.normal(0, 1, 1500).round(4).tolist() for name in ("amount", "age", "merchant_risk")}
CARDS, SHARES = ["visa", "mastercard", "amex"], [0.6, 0.3, 0.1]
# A categorical feature (its values are text), and one the incident window logs too rarely to judge.
EXTRA = {"card": RNG.choice(CARDS, 1500, p=SHARES).tolist(), "hour": RNG.integers(0, 24, 1500).tolist()}


def feature_documents(burn: datetime) -> list[dict[str, Any]]:
    """The incident window's logged features (the same on every call)."""
    features = []
    rng = np.random.default_rng(7)
    for index in range(1000):
        at = burn + timedelta(seconds=index * 0.5)
        features.append(
            {
                "@timestamp": at.isoformat(),
                "amount": float(rng.normal(3, 1)),  # moved by three standard deviations
                "age": float(rng.normal(0, 1)),
                "merchant_risk": float(rng.normal(0, 1)),
                # Visa 60 % -> 40 %, and a new category, crypto, at 15 %.
                "card": str(rng.choice([*CARDS, "crypto"], p=[0.4, 0.35, 0.1, 0.15])),
            }
            | ({"hour": int(rng.integers(0, 24))} if index < 12 else {})
        )
    return features


@pytest.fixture
def elasticsearch(T: int) -> Iterator[FakeElasticsearch]:
    burn = datetime.fromtimestamp(T, UTC) - timedelta(minutes=10)
    with FakeElasticsearch() as server:
        lines = []
        for signature, count in (("Timeout", 7), ("FeatureStoreUnavailable", 4), ("ValueError", 2)):
            for index in range(count):
                at = burn + timedelta(minutes=1, seconds=10 * index)
                lines.append(
                    {
                        "@timestamp": at.isoformat(),
                        "level": "error",
                        "error": {"type": signature},
                        "msg": f"{signature} #{index}",
                    }
                )
        lines += [
            {"@timestamp": (burn + timedelta(minutes=2)).isoformat(), "level": "info", "msg": "ok"}
        ] * 20
        lines.append(
            {
                "@timestamp": (burn - timedelta(hours=2)).isoformat(),
                "level": "error",
                "error": {"type": "Old"},
            }
        )
        server.add_documents("logs-fraud-model-2026.11.25", lines)
        features = feature_documents(burn)
        server.add_documents("features-fraud-model", features)
        yield server


def catalogue(tmp_path: Path) -> FileConfig:
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(REFERENCE | EXTRA))
    return FileConfig(
        models={
            "fraud-detector": ModelConfig(
                services=["fraud-model"],
                selector='service="fraud-model"',
                registry=RegistryConfig(
                    name="fraud-detector", aliases={"prod": "champion", "test": "challenger"}
                ),
                drift=DriftConfig(gauge_metric=None, reference_file=reference, index="features-fraud-model"),
                logs=LogsConfig(index="logs-fraud-model-*"),
            )
        }
    )


def close(sources: ml.Sources) -> None:
    for source in (sources.prometheus, sources.elasticsearch, sources.registry):
        if source is not None:
            source.close()


def open_incident(database_url: str, T: int, environment: str = "prod") -> tuple[Any, int]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    moment = datetime.fromtimestamp(T, UTC)
    incident = incidents.declare(
        engine,
        None,
        IncidentCreate(
            title="fraud model failing",
            model="fraud-detector",
            environment=environment,
            started_at=moment - timedelta(minutes=10),
        ),
        moment,
    )
    assert incident.id is not None
    return engine, incident.id


def test_versions_suspect_registry_drift_and_logs(
    versions_prometheus: PrometheusServer,
    mlflow: MlflowServer,
    elasticsearch: FakeElasticsearch,
    database_url: str,
    tmp_path: Path,
    T: int,
) -> None:
    engine, incident_id = open_incident(database_url, T)
    sources = ml.Sources(
        PrometheusSource(versions_prometheus.url),
        ElasticsearchSource(elasticsearch.url),
        MlflowRegistry(mlflow.url),
    )
    try:
        found = ml.enrich(
            engine, catalogue(tmp_path), sources, incident_id, datetime.fromtimestamp(T + 60, UTC)
        )
    finally:
        close(sources)
    assert found.missing == []
    with Session(engine) as session:
        evidence = ml.evidence(session, incident_id)
        timeline = incidents.timeline(session, incident_id)

    links = {(row.role, row.source, row.version): row for row in evidence["model_versions"]}
    assert set(links) == {
        ("serving", "prometheus", "3"),
        ("serving", "prometheus", "4"),
        ("suspect", "prometheus", "4"),
        ("previous_good", "prometheus", "3"),
        ("serving", "registry", "4"),  # the champion alias
    }
    suspect = links[("suspect", "prometheus", "4")]
    # 5 failing of 50 requests a second over the 10-minute incident window; version 3 never fails.
    assert suspect.detail["error_ratio"] == pytest.approx(0.1, rel=1e-9)
    assert links[("previous_good", "prometheus", "3")].detail["error_ratio"] == 0.0
    assert suspect.first_seen == datetime.fromtimestamp(T - 50 * 60, UTC)
    assert suspect.last_seen == datetime.fromtimestamp(T, UTC)
    assert links[("serving", "prometheus", "4")].detail["requests"] == pytest.approx(50 * 600, rel=1e-9)
    reason = next(event for event in timeline if event.kind == "evidence" and "version 4" in event.text)
    assert reason.text == (
        "version 4 began serving 40 min before the burn and fails 10.00% of requests "
        "against 0.00% for version 3"
    )
    assert links[("serving", "registry", "4")].detail["alias"] == "champion"

    drifted = {row.feature for row in evidence["drift_signals"] if row.drifted}
    assert drifted == {"amount", "card"}
    signals = {(row.feature, row.method): row for row in evidence["drift_signals"]}
    # Text values are compared as categories, the new one kept: chi-square and PSI over the cards.
    assert {m for f, m in signals if f == "card"} == {"chi2", "psi"}
    assert signals[("card", "chi2")].kind == "categorical" and signals[("card", "chi2")].n == 1000
    # Total variation: visa -20, mastercard +5, crypto +15 points: 0.2 (give or take the sampling).
    assert signals[("card", "chi2")].effect == pytest.approx(0.2, abs=0.05)
    # Twelve values of `hour` in the window: too few to judge (30), said so rather than a verdict.
    hour = [row for (f, _), row in signals.items() if f == "hour"]
    assert hour and all(
        row.state == "insufficient_data" and row.n == 12 and row.score is None for row in hour
    )
    # amount moved by 3 sigma (Wasserstein 3 sigma), card by 0.2 of its shares (4x chi2's minimum 0.05).
    assert any(event.text == "drifted features: amount, card" for event in timeline)
    # The new category is named with its count in the window, as logged.
    crypto = sum(
        doc["card"] == "crypto"
        for doc in feature_documents(datetime.fromtimestamp(T, UTC) - timedelta(minutes=10))
    )
    assert signals[("card", "chi2")].detail == {"unseen": [["crypto", crypto]], "unseen_share": crypto / 1000}
    # The evidence lists the signals in the order every door shows them (the API and console read it):
    # the drifted features, the largest effect first (amount's 3 sigma before card's 0.2 of its shares),
    # then the others by name.
    features = [row.feature for row in evidence["drift_signals"]]
    assert list(dict.fromkeys(features)) == ["amount", "card", "age", "hour", "merchant_risk"], features
    assert all(
        row.judged_by == "sloguard" for row in map(DriftSignalRead.model_validate, evidence["drift_signals"])
    )

    assert [(row.signature, row.count) for row in evidence["log_evidence"]] == [
        ("Timeout", 7),
        ("FeatureStoreUnavailable", 4),
        ("ValueError", 2),
    ]
    timeout = evidence["log_evidence"][0]
    burn = datetime.fromtimestamp(T, UTC) - timedelta(minutes=10)
    assert (timeout.first_seen, timeout.last_seen) == (
        burn + timedelta(minutes=1),
        burn + timedelta(minutes=2),
    )
    engine.dispose()


def test_drift_reference_from_an_index(
    elasticsearch: FakeElasticsearch, database_url: str, tmp_path: Path, T: int
) -> None:
    elasticsearch.add_documents(
        "features-training",
        [{"amount": a, "age": b, "merchant_risk": c} for a, b, c in zip(*REFERENCE.values(), strict=True)],
    )
    engine, incident_id = open_incident(database_url, T)
    config = catalogue(tmp_path)
    model = config.models["fraud-detector"]
    assert model.drift is not None
    model.drift.reference_file = None
    model.drift.reference_index = "features-training"
    model.registry = model.logs = None
    sources = ml.Sources(None, ElasticsearchSource(elasticsearch.url), None)
    try:
        found = ml.enrich(engine, config, sources, incident_id, datetime.fromtimestamp(T + 60, UTC))
    finally:
        close(sources)
    assert found.missing == ["serving versions (no Prometheus)"], found.notes
    assert {row.feature for row in found.drift if row.drifted} == {"amount"}, (found.notes, found.drift)
    engine.dispose()


def test_sloguard_yaml_drift_settings_reach_the_comparison(
    elasticsearch: FakeElasticsearch, database_url: str, tmp_path: Path, T: int
) -> None:
    # `hour` is logged as integers: numeric unless declared; declared, it is compared as categories.
    # min_sample 10 lets its 12 window values be judged; min_effect above anything a 3-sigma move reaches
    # (PSI, normalised Wasserstein and KS D of a 3-sigma shift are about 5, 3 and 0.87) keeps `amount`
    # significant but not drifted.
    engine, incident_id = open_incident(database_url, T)
    config = catalogue(tmp_path)
    model = config.models["fraud-detector"]
    assert model.drift is not None
    model.drift.categorical = ["hour"]
    model.drift.min_sample = 10
    model.drift.min_effect = {"psi": 100.0, "wasserstein": 100.0, "ks": 1.5}
    model.registry = model.logs = None
    sources = ml.Sources(None, ElasticsearchSource(elasticsearch.url), None)
    try:
        found = ml.enrich(engine, config, sources, incident_id, datetime.fromtimestamp(T + 60, UTC))
    finally:
        close(sources)
    hour = [row for row in found.drift if row.feature == "hour"]
    assert {(row.method, row.kind, row.n) for row in hour} == {
        ("chi2", "categorical", 12),
        ("psi", "categorical", 12),
    }
    assert all(row.state != "insufficient_data" for row in hour)
    amount = [row for row in found.drift if row.feature == "amount"]
    assert {row.method for row in amount} == {"psi", "wasserstein", "ks"}
    assert all(row.p_value is not None and row.p_value < 0.001 and not row.drifted for row in amount), amount
    engine.dispose()


def test_an_unknown_alias_is_a_note_not_an_error(
    versions_prometheus: PrometheusServer, mlflow: MlflowServer, database_url: str, tmp_path: Path, T: int
) -> None:
    engine, incident_id = open_incident(database_url, T, environment="test")  # alias "challenger" is unset
    sources = ml.Sources(PrometheusSource(versions_prometheus.url), None, MlflowRegistry(mlflow.url))
    config = catalogue(tmp_path)
    config.models["fraud-detector"].drift = None
    config.models["fraud-detector"].logs = None
    try:
        found = ml.enrich(engine, config, sources, incident_id, datetime.fromtimestamp(T, UTC))
    finally:
        close(sources)
    assert found.missing == []
    assert any(
        "MLflow has no alias 'challenger' on model 'fraud-detector'" in text for _, text, _ in found.notes
    )
    with Session(engine) as session:
        roles = {(row.role, row.source) for row in ml.evidence(session, incident_id)["model_versions"]}
    assert ("serving", "registry") not in roles and ("suspect", "prometheus") in roles
    engine.dispose()


def test_sources_down_still_open_the_incident_with_a_note(tmp_path: Path) -> None:
    config = tmp_path / "sloguard.yaml"
    config.write_text(
        "models:\n  fraud-detector:\n    services: [fraud-model]\n    logs: {index: logs-fraud-model-*}\n"
    )
    with FakeElasticsearch() as elasticsearch:
        elasticsearch.fail_with = 503
        settings = make_settings(
            tmp_path, config_file=config, elasticsearch_url=elasticsearch.url, source_timeout=1
        )
        with (
            UvicornThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as http,
        ):
            responder = bearer(personal_token(settings.database_url, "U0ANA", "respond"))
            started = time.perf_counter()
            created = http.post(
                "/api/v1/incidents",
                json={"title": "scores are zero", "service": "fraud-model"},
                headers=responder,
            )
            elapsed = time.perf_counter() - started
            assert created.status_code == 201
            assert elapsed < 2  # evidence is gathered in the background, not in the request
            incident_id = created.json()["id"]

            def notes() -> list[str]:
                timeline = http.get(f"/api/v1/incidents/{incident_id}").json()["timeline"]
                return [event["text"] for event in timeline if event["kind"] == "evidence_missing"]

            wait_until(lambda: len(notes()) == 2, timeout=20, what="missing-evidence notes")
            texts = notes()
            assert texts[0].startswith("missing: serving versions (prometheus at http://127.0.0.1:9")
            assert texts[1].startswith("missing: log evidence (elasticsearch search: 503")
            assert http.get(f"/api/v1/incidents/{incident_id}").json()["status"] == "triggered"


@pytest.fixture(scope="module")
def replaced_prometheus(tmp_path_factory: pytest.TempPathFactory, T: int) -> Iterator[PrometheusServer]:
    """A full rollout: version 2 serves 100 req/s (0.2 % failing) until version 5 replaces it entirely
    50 minutes before T; version 5 fails 4 % of its 100 req/s. Version 2 has no traffic in the incident
    window at all."""
    folder = tmp_path_factory.mktemp("replaced")
    start, v5_start = T - 8 * 3600, T - 50 * 60

    def until(rate: float, begin: int, end: int) -> Any:
        return lambda t: 1000 + (min(t, end) - begin) * rate if begin <= t <= end else None

    labels = {"service": "fraud-model"}
    series = [
        Series(
            "http_requests_total",
            labels | {"model_version": "2", "code": "200"},
            until(99.8, start, v5_start),
        ),
        Series(
            "http_requests_total", labels | {"model_version": "2", "code": "500"}, until(0.2, start, v5_start)
        ),
        Series("http_requests_total", labels | {"model_version": "5", "code": "200"}, until(96, v5_start, T)),
        Series("http_requests_total", labels | {"model_version": "5", "code": "500"}, until(4, v5_start, T)),
    ]
    write_openmetrics(folder / "rollout.om", series, start, T, STEP)
    backfill(folder / "rollout.om", folder / "data")
    server = PrometheusServer(folder / "data").start()
    yield server
    server.stop()


def test_a_version_fully_replaced_before_the_burn_is_still_the_previous_good_one(
    replaced_prometheus: PrometheusServer, database_url: str, T: int
) -> None:
    engine, incident_id = open_incident(database_url, T)
    config = FileConfig(
        models={"fraud-detector": ModelConfig(services=["fraud-model"], selector='service="fraud-model"')}
    )
    sources = ml.Sources(PrometheusSource(replaced_prometheus.url), None, None)
    try:
        ml.enrich(engine, config, sources, incident_id, datetime.fromtimestamp(T + 60, UTC))
    finally:
        close(sources)
    with Session(engine) as session:
        evidence = ml.evidence(session, incident_id)
    links = {(row.role, row.version): row for row in evidence["model_versions"]}
    assert {("suspect", "5"), ("previous_good", "2")} <= set(links)
    # Version 2 is judged over the last 10 minutes it served: 0.2 of 100 requests a second failed.
    assert links[("previous_good", "2")].detail["error_ratio"] == pytest.approx(0.002, rel=1e-6)
    assert links[("suspect", "5")].detail["error_ratio"] == pytest.approx(0.04, rel=1e-6)
    assert links[("suspect", "5")].detail["reason"] == (
        "version 5 began serving 40 min before the burn and fails 4.00% of requests "
        "against 0.20% for version 2"
    )
    engine.dispose()
