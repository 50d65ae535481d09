"""deploy/: the Dockerfile and the Kubernetes manifests, checked without a container engine or a cluster.

Manifests are validated against the official Kubernetes JSON schemas (strict: unknown fields refused)
that kubernetes-validate ships, then against sloguard itself: every SLOGUARD_* name is a real setting,
the settings they make load, the ConfigMaps hold a valid sloguard.yaml and the repository's SLO files.
The Dockerfile is parsed (dockerfile-parse) and linted (hadolint, where its wheel exists).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from app import db
from app.config import SECRET_FIELDS, _known_variables, load_file_config, load_settings
from app.errors import ConfigError
from app.slo.spec import load_specs
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported upstream when this was written
SERVER = {"app.kubernetes.io/name": "sloguard", "app.kubernetes.io/component": "server"}
SECRET_FILE_VARIABLES = {f"SLOGUARD_{name.upper()}_FILE" for name in SECRET_FIELDS}


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBE / name).read_text()) if doc]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes API object in deploy/kubernetes (the Kustomization is kustomize's own)."""
    return [
        (path.name, doc)
        for path in sorted(KUBE.glob("*.yaml"))
        for doc in documents(path.name)
        if doc["kind"] != "Kustomization"
    ]


def by_kind(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(deployment)["env"]}


def deployments() -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == "Deployment"]


# ---------------------------------------------------------------- Kubernetes schemas


@pytest.mark.parametrize(
    "doc",
    [pytest.param(doc, id=f"{name}:{doc['kind']}/{doc['metadata']['name']}") for name, doc in manifests()],
)
def test_every_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    """The validator really looks: a typo in the Deployment fails it."""
    broken = copy.deepcopy(by_kind("Deployment", "sloguard"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    (kustomization,) = documents("kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in KUBE.glob("*.yaml")} - {
        "kustomization.yaml",
        "secret.example.yaml",
    }


# ---------------------------------------------------------------- the shape asked for


def test_server_deployment_runs_three_replicas_with_probes_on_healthz_and_readyz() -> None:
    deployment = by_kind("Deployment", "sloguard")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"]["matchLabels"] == SERVER
    assert deployment["spec"]["template"]["metadata"]["labels"] == SERVER
    main = container(deployment)
    assert main["args"][:1] == ["serve"]
    port = next(p for p in main["ports"] if p["name"] == "http")["containerPort"]
    assert main["args"][main["args"].index("--port") + 1] == str(port)
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_the_replicas_share_postgresql_and_elect_the_scheduler_leader() -> None:
    """Every replica runs the scheduler; PostgreSQL's advisory lock picks the one that runs the jobs, so
    the database must be PostgreSQL (SQLite would also give each pod a database of its own)."""
    (deployment,) = deployments()
    env = env_of(deployment)
    assert env["SLOGUARD_SCHEDULER_ENABLED"]["value"] == "true"
    assert "SLOGUARD_LEADER_TAKEOVER" in env
    (secret,) = documents("secret.example.yaml")
    assert secret["stringData"]["database-url"].startswith("postgresql://")


def test_service_and_pdb_select_the_server_pods() -> None:
    service, budget = by_kind("Service", "sloguard"), by_kind("PodDisruptionBudget", "sloguard")
    assert service["spec"]["selector"] == SERVER
    assert budget["spec"]["selector"]["matchLabels"] == SERVER
    ports = {p["name"] for p in container(by_kind("Deployment", "sloguard"))["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert budget["spec"]["maxUnavailable"] < by_kind("Deployment", "sloguard")["spec"]["replicas"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_pods_run_as_non_root_with_a_read_only_root(deployment: dict[str, Any]) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    main = container(deployment)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    # Everything sloguard writes is on a volume: drafts and /tmp.
    mounts = {m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")}
    assert {env_of(deployment)["SLOGUARD_POSTMORTEM_DIR"]["value"], "/tmp"} <= mounts


# ---------------------------------------------------------------- settings, secrets, config


def dockerfile_env() -> dict[str, str]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return dict(parser.envs)


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_every_sloguard_variable_is_a_real_setting(deployment: dict[str, Any]) -> None:
    names = {name for name in env_of(deployment) if name.startswith("SLOGUARD_")}
    names |= {name for name in dockerfile_env() if name.startswith("SLOGUARD_")}
    assert names, "no SLOGUARD_* variable found"
    assert names <= _known_variables(), sorted(names - _known_variables())


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_secrets_come_from_the_sloguard_secret(deployment: dict[str, Any]) -> None:
    (secret,) = documents("secret.example.yaml")
    keys = set(secret["stringData"]) | {"elasticsearch-api-key"}  # optional, named in a comment
    env = env_of(deployment)
    references = [item["valueFrom"]["secretKeyRef"] for item in env.values() if "valueFrom" in item]
    assert {ref["name"] for ref in references} == {secret["metadata"]["name"]}
    assert {ref["key"] for ref in references} <= keys
    assert "SLOGUARD_DATABASE_URL" in env and "valueFrom" in env["SLOGUARD_DATABASE_URL"]
    # The *_FILE secrets are files of the mounted Secret; no secret value is written in a manifest.
    pod = deployment["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    (mount,) = [m for m in container(deployment)["volumeMounts"] if m["name"] == volume["name"]]
    files = {f"{mount['mountPath']}/{item['path']}": item["key"] for item in volume["secret"]["items"]}
    file_vars = {name: item["value"] for name, item in env.items() if name in SECRET_FILE_VARIABLES}
    assert set(file_vars) == {"SLOGUARD_API_TOKEN_FILE", "SLOGUARD_WEBHOOK_TOKEN_FILE"}
    assert set(file_vars.values()) == set(files)
    assert {files[path] for path in file_vars.values()} <= keys
    # 0440 with the pod's fsGroup: the non-root user can read them.
    assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"]


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_the_settings_the_manifests_make_load(
    deployment: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container's environment, with real secret values in place of the Secret, passes sloguard's
    own settings check; with the example Secret's placeholders it stops, as the example promises."""
    secret_values = {
        "database-url": "postgresql://sloguard:s3cr3t-pw@postgres:5432/sloguard",
        "api-token": "api-" + "7f3a9c" * 6,
        "webhook-token": "hook-" + "1b2e8d" * 6,
        "slack-bot-token": "xoxb-1234-5678-abcdefghijkl",
        "slack-signing-secret": "8f14e45fceea167a5a36dedd4bea2543",
        "elasticsearch-api-key": "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
    }

    def environment(values: dict[str, str]) -> dict[str, str]:
        out = dict(dockerfile_env())
        for name, item in env_of(deployment).items():
            if "valueFrom" in item:
                out[name] = values[item["valueFrom"]["secretKeyRef"]["key"]]
            elif name in SECRET_FILE_VARIABLES:
                path = tmp_path / Path(item["value"]).name
                path.write_text(values[path.name] + "\n")
                out[name] = str(path)
            else:
                out[name] = item["value"]
        return {k: v for k, v in out.items() if k.startswith("SLOGUARD_")}

    def load(env: dict[str, str]) -> Any:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        try:
            return load_settings(env)
        finally:
            for name in env:
                monkeypatch.delenv(name)

    settings = load(environment(secret_values))
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.api_token is not None and settings.slack_enabled
    assert str(settings.slo_dir) == "/etc/sloguard/slo"

    (example,) = documents("secret.example.yaml")
    with pytest.raises(ConfigError, match="placeholder"):
        load(environment(example["stringData"] | {"elasticsearch-api-key": "unused-key-0123456789"}))


def test_configmaps_hold_a_valid_sloguard_yaml_and_the_repositorys_slo_files(tmp_path: Path) -> None:
    config = by_kind("ConfigMap", "sloguard-config")["data"]["sloguard.yaml"]
    (tmp_path / "sloguard.yaml").write_text(config)
    file_config = load_file_config(tmp_path / "sloguard.yaml")

    slo_files = by_kind("ConfigMap", "sloguard-slo")["data"]
    repo_files = {path.name: path.read_text() for path in sorted((REPO / "slo").glob("*.yaml"))}
    assert slo_files == repo_files, "refresh deploy/kubernetes/configmap.yaml from slo/"
    (tmp_path / "slo").mkdir()
    for name, text in slo_files.items():
        (tmp_path / "slo" / name).write_text(text)
    slo_ids = {slo.id for slo in load_specs([tmp_path / "slo"])}
    for model in file_config.models.values():
        assert set(model.slos) <= slo_ids


@pytest.mark.parametrize("deployment", deployments(), ids=lambda d: d["metadata"]["name"])
def test_configmaps_are_mounted_where_the_settings_point(deployment: dict[str, Any]) -> None:
    env = env_of(deployment)
    pod = deployment["spec"]["template"]["spec"]
    sources = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    mounts = {
        m["mountPath"]: sources[m["name"]]
        for m in container(deployment)["volumeMounts"]
        if m["name"] in sources
    }
    assert mounts[env["SLOGUARD_SLO_DIR"]["value"]] == "sloguard-slo"
    config_file = Path(env["SLOGUARD_CONFIG_FILE"]["value"])
    assert mounts[str(config_file.parent)] == "sloguard-config"
    assert config_file.name in by_kind("ConfigMap", "sloguard-config")["data"]


# ---------------------------------------------------------------- Dockerfile


def stages(parser: DockerfileParser) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(instruction)
    return out


def exec_form(instruction: dict[str, Any]) -> list[str]:
    value: list[str] = yaml.safe_load(instruction["value"])  # a JSON array is YAML too
    return value


def test_dockerfile_is_multi_stage_with_a_builder_venv_and_a_slim_runtime() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    assert parser.is_multistage
    builder, runtime = stages(parser)
    assert builder[0]["value"].endswith("AS builder")
    assert any("python -m venv" in i["value"] for i in builder if i["instruction"] == "RUN")
    assert any("--from=builder" in i["value"] for i in runtime if i["instruction"] == "COPY")
    # The base image is an ARG: its default must be a slim Python image.
    (default,) = [
        i["value"] for i in parser.structure if i["instruction"] == "ARG" and "PYTHON_IMAGE" in i["value"]
    ]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.1[1-9]-slim(-\w+)?", default)


def test_dockerfile_runs_sloguard_serve_as_a_non_root_user_with_a_healthcheck() -> None:
    _, runtime = stages(DockerfileParser(path=str(DOCKERFILE)))
    last = {i["instruction"]: i for i in runtime}  # the last of each instruction wins
    user = last["USER"]["value"].split(":")[0]
    assert user not in ("root", "0")
    assert exec_form(last["ENTRYPOINT"]) + exec_form(last["CMD"])[:1] == ["sloguard", "serve"]
    command = exec_form(last["CMD"])
    port = command[command.index("--port") + 1]
    assert last["EXPOSE"]["value"] == port
    assert "/healthz" in last["HEALTHCHECK"]["value"] and f":{port}/" in last["HEALTHCHECK"]["value"]
    kube_port = container(by_kind("Deployment", "sloguard"))["ports"][0]["containerPort"]
    assert str(kube_port) == port


def test_the_image_carries_the_migrations_where_the_app_looks_for_them() -> None:
    """The migrations are package data (app/migrations), so the image's regular install carries them."""
    assert db.ALEMBIC_DIR == REPO / "app" / "migrations"
    text = DOCKERFILE.read_text()
    assert "COPY app/ ./app/" in text and "alembic" not in text
    assert "pip install ." in text and "--editable" not in text


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
            out += {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        return re.compile(out)

    verdict = False
    for raw in patterns:
        negate, pattern = raw.startswith("!"), raw.lstrip("!")
        parts = path.split("/")
        candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        if any(regex(pattern).fullmatch(candidate) for candidate in candidates):
            verdict = not negate
    return verdict


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_nothing_secret() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for instruction in DockerfileParser(path=str(DOCKERFILE)).structure:
        if instruction["instruction"] == "COPY" and "--from" not in instruction["value"]:
            copied += instruction["value"].split()[:-1]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        sample = next((p for p in (REPO / source).rglob("*.py")), REPO / source)
        assert not ignored(str(sample.relative_to(REPO)), patterns), sample
    for secret in (".git/config", ".venv/bin/python", "sloguard.db", "tests/conftest.py", ".env"):
        assert ignored(secret, patterns), secret
    assert ignored("app/__pycache__/main.cpython-311.pyc", patterns)


@pytest.mark.skipif(
    shutil.which("hadolint", path=str(Path(sys.executable).parent)) is None, reason="no hadolint"
)
def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
