"""deploy/kubernetes as a user applies it: each overlay rendered with `kubectl kustomize` (its secrets.env
filled in from the example), validated offline against the Kubernetes schemas (kubernetes-validate,
strict), the Prometheus Operator Component against the operator's CRD schemas (cloudcoil's models), its
rules through promtool, and the rendered pod's files and environment run through sloguard itself
(`check-config`, `runbooks lint`, `slo lint`) on a copy of the pod's mounts."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from dockerfile_parse import DockerfileParser

from app.config import SECRET_FIELDS, _known_variables, load_file_config, load_settings
from app.errors import ConfigError
from app.slo import rules
from app.slo.spec import load_specs
from tests import kubernetes as kube
from tests.conftest import REPO
from tests.prometheus import promtool

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
KUBERNETES_VERSION = "1.30.0"  # the oldest minor still supported upstream when this was written
SERVER = {"app.kubernetes.io/name": "sloguard", "app.kubernetes.io/component": "server"}
SECRET_FILE_VARIABLES = {f"SLOGUARD_{name.upper()}_FILE" for name in SECRET_FIELDS}
PROMETHEUS_RULE = REPO / "deploy" / "kubernetes" / kube.COMPONENT / "prometheusrule.yaml"


@pytest.fixture(scope="module", params=kube.OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def rendered(overlay: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return kube.render(tmp_path_factory.mktemp(f"render-{overlay}"), overlay)


def deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return kube.one(docs, "Deployment")


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = deployment(docs)["spec"]["template"]["spec"]["containers"]
    return only


def env_of(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(docs)["env"]}


def dockerfile_env() -> dict[str, str]:
    return dict(DockerfileParser(path=str(REPO / "deploy" / "Dockerfile")).envs)


def pod_environment(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's SLOGUARD_* environment as the kubelet makes it: the image's ENV, then envFrom, then
    env, with the generated Secret's and ConfigMaps' values (an optional key that is absent stays unset)."""
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    out = dict(dockerfile_env())
    for source in container(docs).get("envFrom", []):
        out.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for name, item in env_of(docs).items():
        if "value" in item:
            out[name] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        values = kube.secret_data(objects[("Secret", ref["name"])])
        if ref["key"] in values:
            out[name] = values[ref["key"]]
        else:
            assert ref.get("optional"), f"{name}: the Secret has no {ref['key']} and it is not optional"
            out.pop(name, None)
    return {key: value for key, value in out.items() if key.startswith("SLOGUARD_")}


def materialise_mounts(docs: list[dict[str, Any]], root: Path) -> dict[str, Path]:
    """Write each volume the container mounts under `root` + its mount path, as the kubelet lays it out
    (ConfigMaps: every key a file; Secrets: their items): each file really lies in a `..<timestamp>/`
    folder, `..data` links to that folder and each name is a link through `..data`, so that whatever reads
    the folder meets every file twice unless it leaves hidden entries out. Returns mount path -> folder."""
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    pod = deployment(docs)["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounted = {}
    for mount in container(docs)["volumeMounts"]:
        volume = volumes[mount["name"]]
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        if "configMap" in volume:
            files = objects[("ConfigMap", volume["configMap"]["name"])]["data"]
        elif "secret" in volume:
            values = kube.secret_data(objects[("Secret", volume["secret"]["secretName"])])
            files = {item["path"]: values[item["key"]] for item in volume["secret"]["items"]}
        stamp = folder / "..2026_12_04_12_00_00.000000001"
        stamp.mkdir()
        (folder / "..data").symlink_to(stamp.name)
        for name, text in files.items():
            (stamp / name).write_text(text, encoding="utf-8")
            (folder / name).symlink_to(f"..data/{name}")
        mounted[mount["mountPath"]] = folder
    return mounted


def rebased(environment: dict[str, str], mounted: dict[str, Path]) -> dict[str, str]:
    """The pod's paths as paths under the test's copy of its mounts."""
    out = {}
    for name, value in environment.items():
        for mount_path, folder in sorted(mounted.items(), key=lambda item: -len(item[0])):
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                value = str(folder / value[len(mount_path) :].lstrip("/"))
                break
        out[name] = value
    return out


# ---------------------------------------------------------------- Kubernetes schemas


def test_every_rendered_object_is_valid_against_the_kubernetes_schema(rendered: list[dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert {"Deployment", "Service", "Ingress", "Secret", "ConfigMap"} <= kinds
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field(rendered: list[dict[str, Any]]) -> None:
    """The validator really looks: a typo in the Deployment fails it."""
    broken = copy.deepcopy(deployment(rendered))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_an_overlay_does_not_render_until_its_secrets_env_is_filled_in(tmp_path: Path) -> None:
    """As shipped, only the example exists (git ignores secrets.env): kustomize names the missing file."""
    root = kube.copy_tree(tmp_path)
    for overlay in kube.OVERLAYS:
        assert not (root / "overlays" / overlay / "secrets.env").exists()
        result = kube.kustomize(root / "overlays" / overlay)
        assert result.returncode != 0 and "secrets.env" in result.stderr
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/kubernetes/overlays/sqlite/secrets.env"], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, "git must ignore the filled-in secrets.env"


# ---------------------------------------------------------------- the shape asked for


def test_the_sqlite_overlay_runs_one_pod_recreated_on_a_claim_without_a_budget(tmp_path: Path) -> None:
    docs = kube.render(tmp_path, "sqlite")
    spec = deployment(docs)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert not [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]
    claim = kube.one(docs, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    (data,) = [v for v in volumes.values() if "persistentVolumeClaim" in v]
    assert set(data) == {"name", "persistentVolumeClaim"}  # the base's emptyDir replaced, not kept beside it
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == data["name"]]
    # The database file and the review drafts are on the claim.
    environment = pod_environment(docs)
    database = environment["SLOGUARD_DATABASE_URL"].removeprefix("sqlite:///")
    assert Path(database).parent == Path(mount["mountPath"])
    assert Path(environment["SLOGUARD_POSTMORTEM_DIR"]).is_relative_to(mount["mountPath"])


def test_the_postgresql_overlay_runs_replicas_on_the_secrets_database_with_a_budget(tmp_path: Path) -> None:
    docs = kube.render(tmp_path, "postgresql")
    spec = deployment(docs)["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    env = env_of(docs)
    ref = env["SLOGUARD_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    secret = kube.one(docs, "Secret")
    assert ref["name"] == secret["metadata"]["name"] and not ref.get("optional")
    assert kube.secret_data(secret)[ref["key"]] == kube.FILLED_IN["database-url"]
    assert kube.example_secrets("postgresql")["database-url"].startswith("postgresql://")
    budget = kube.one(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == SERVER
    assert budget["spec"]["maxUnavailable"] < spec["replicas"]
    # Every replica runs the scheduler; PostgreSQL's advisory lock elects the one that runs the jobs.
    environment = pod_environment(docs)
    assert environment["SLOGUARD_SCHEDULER_ENABLED"] == "true" and "SLOGUARD_LEADER_TAKEOVER" in environment


def test_probes_match_healthz_and_readyz_and_resources_are_set(rendered: list[dict[str, Any]]) -> None:
    main = container(rendered)
    assert deployment(rendered)["spec"]["selector"]["matchLabels"] == SERVER
    assert main["args"][:1] == ["serve"]
    port = next(p for p in main["ports"] if p["name"] == "http")["containerPort"]
    assert main["args"][main["args"].index("--port") + 1] == str(port)
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert main["resources"]["requests"]["cpu"] and main["resources"]["requests"]["memory"]
    assert main["resources"]["limits"]["memory"]


def test_service_and_ingress_reach_the_server_pods_at_the_public_url(rendered: list[dict[str, Any]]) -> None:
    service, ingress = kube.one(rendered, "Service"), kube.one(rendered, "Ingress")
    assert service["spec"]["selector"] == SERVER
    ports = {p["name"] for p in container(rendered)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    public = pod_environment(rendered)["SLOGUARD_PUBLIC_URL"]
    host = re.fullmatch(r"https://([^/:]+)/?", public)
    assert host is not None, public
    assert rule["host"] == host.group(1) and ingress["spec"]["tls"][0]["hosts"] == [host.group(1)]


def test_pods_run_as_non_root_with_a_read_only_root(rendered: list[dict[str, Any]]) -> None:
    pod = deployment(rendered)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    main = container(rendered)
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    # Everything sloguard writes is on a writable volume: drafts (and SQLite's database) and /tmp.
    writable = [m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")]
    drafts = pod_environment(rendered)["SLOGUARD_POSTMORTEM_DIR"]
    assert "/tmp" in writable and any(Path(drafts).is_relative_to(path) for path in writable)


# ---------------------------------------------------------------- settings, secrets, config


def test_every_sloguard_variable_is_a_real_setting(rendered: list[dict[str, Any]]) -> None:
    names = set(pod_environment(rendered)) | set(env_of(rendered))
    assert len(names) > 10
    assert names <= _known_variables(), sorted(names - _known_variables())


def test_secrets_come_from_the_generated_secret(overlay: str, rendered: list[dict[str, Any]]) -> None:
    secret = kube.one(rendered, "Secret")
    keys = set(kube.example_secrets(overlay))
    assert set(kube.secret_data(secret)) == keys
    env = env_of(rendered)
    references = [item["valueFrom"]["secretKeyRef"] for item in env.values() if "valueFrom" in item]
    assert {ref["name"] for ref in references} == {secret["metadata"]["name"]}
    assert {ref["key"] for ref in references} <= keys
    # The two tokens are files of the mounted Secret; no secret value is written in a manifest.
    pod = deployment(rendered)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    (mount,) = [m for m in container(rendered)["volumeMounts"] if m["name"] == volume["name"]]
    files = {f"{mount['mountPath']}/{item['path']}": item["key"] for item in volume["secret"]["items"]}
    file_vars = {name: item["value"] for name, item in env.items() if name in SECRET_FILE_VARIABLES}
    assert set(file_vars) == {"SLOGUARD_API_TOKEN_FILE", "SLOGUARD_WEBHOOK_TOKEN_FILE"}
    assert set(file_vars.values()) == set(files)
    # 0440 with the pod's fsGroup: the non-root user can read them.
    assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"]
    text = yaml.safe_dump_all(rendered)
    for value in kube.FILLED_IN.values():
        assert value not in text  # only base64 in the Secret's data


def test_the_example_secrets_stop_sloguard_until_they_are_replaced(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped example's placeholders are refused at start-up, so it cannot go live by accident."""
    root = kube.copy_tree(tmp_path)
    kube.fill_in(root, overlay, kube.example_secrets(overlay))
    result = kube.kustomize(root / "overlays" / overlay)
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    mounted = materialise_mounts(docs, tmp_path / "pod")
    environment = rebased(pod_environment(docs), mounted)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="placeholder"):
        load_settings(environment)


def test_the_rendered_pod_mounts_the_slos_runbooks_and_config_where_sloguard_reads_them(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    mounted = materialise_mounts(rendered, tmp_path / "pod")
    environment = pod_environment(rendered)
    settings_names = {"SLO_DIR": "slo", "RUNBOOK_DIR": "runbooks"}
    for setting, repo_folder in settings_names.items():
        folder = mounted[environment[f"SLOGUARD_{setting}"]]  # a mount exactly where the setting points
        repository = sorted(path.name for path in (REPO / repo_folder).iterdir() if path.is_file())
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("..")) == repository
        for name in repository:
            assert (folder / name).read_text() == (REPO / repo_folder / name).read_text(), name
    config_file = Path(environment["SLOGUARD_CONFIG_FILE"])
    assert (mounted[str(config_file.parent)] / config_file.name).is_file()


def test_sloguard_check_config_runbooks_lint_and_slo_lint_pass_in_the_rendered_pod(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    """sloguard's own checks, run with the pod's environment on a copy of its mounts (paths moved under
    the copy; the working directory the image's)."""
    mounted = materialise_mounts(rendered, tmp_path / "pod")
    environment = rebased(pod_environment(rendered), mounted)
    workdir = DockerfileParser(path=str(REPO / "deploy" / "Dockerfile")).structure
    (cwd,) = [i["value"] for i in workdir if i["instruction"] == "WORKDIR" and i["value"].startswith("/var")]
    (tmp_path / "pod" / cwd.lstrip("/")).mkdir(parents=True, exist_ok=True)
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    for command in (["check-config"], ["runbooks", "lint"], ["slo", "lint"]):
        result = subprocess.run(
            [SLOGUARD, *command],
            env=clean | environment,
            cwd=tmp_path / "pod" / cwd.lstrip("/"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        for value in kube.FILLED_IN.values():
            assert value not in result.stdout + result.stderr


def test_every_group_allowed_to_act_has_members_and_incidents_have_a_channel(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The issue's complaint: S0ONCALL could roll back but had no `groups:` entry, so nobody could."""
    text = kube.config_map(rendered, "sloguard-config")["data"]["sloguard.yaml"]
    (tmp_path / "sloguard.yaml").write_text(text)
    config = load_file_config(tmp_path / "sloguard.yaml")
    named = {
        entry
        for model in config.models.values()
        for environment in model.environments.values()
        for entry in environment.rollback + environment.promote
    }
    assert named
    for entry in named:
        if entry.startswith("S"):
            assert config.groups.get(entry), f"{entry}: no members in groups:"
    assert pod_environment(rendered)["SLOGUARD_SLACK_CHANNEL"].startswith("C")
    slo_ids = {slo.id for slo in load_specs([REPO / "slo"])}
    for model in config.models.values():
        assert set(model.slos) <= slo_ids


def test_the_bases_copies_of_slo_and_runbooks_are_current_and_all_listed() -> None:
    base = kube.KUBE / "base"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    listed = {
        generator["name"]: generator.get("files", []) for generator in kustomization["configMapGenerator"]
    }
    for folder, generator in (("slo", "sloguard-slo"), ("runbooks", "sloguard-runbooks")):
        repository = {path.name: path.read_text() for path in sorted((REPO / folder).iterdir())}
        copies = {path.name: path.read_text() for path in sorted((base / folder).iterdir())}
        assert copies == repository, (
            f"deploy/kubernetes/base/{folder} differs from {folder}/: run make kubernetes"
        )
        assert sorted(listed[generator]) == sorted(f"{folder}/{name}" for name in repository), (
            f"list every {folder}/ file under {generator} in deploy/kubernetes/base/kustomization.yaml"
        )


# ---------------------------------------------------------------- the Prometheus Operator Component


def strictly(model: type[Any], doc: dict[str, Any]) -> None:
    """model_validate, and nothing dropped: cloudcoil's models ignore unknown fields, so a misspelt one
    would pass unnoticed without the round trip."""
    parsed = model.model_validate(doc)
    assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc


@pytest.fixture(scope="module")
def with_component(overlay: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return kube.render(tmp_path_factory.mktemp(f"component-{overlay}"), overlay, component=True)


def test_the_components_objects_are_valid_against_the_operators_crd_schemas(
    with_component: list[dict[str, Any]],
) -> None:
    monitor, rule = kube.one(with_component, "ServiceMonitor"), kube.one(with_component, "PrometheusRule")
    strictly(monitoring.ServiceMonitor, monitor)
    strictly(monitoring.PrometheusRule, rule)
    for doc in with_component:
        if doc["apiVersion"] != "monitoring.coreos.com/v1":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_crd_check_refuses_a_wrong_field() -> None:
    """The models really look: a rule without its expression, or an endpoint with a misspelt field."""
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    with pytest.raises(ValueError):
        monitoring.PrometheusRule.model_validate(rule)
    monitor = yaml.safe_load((kube.KUBE / kube.COMPONENT / "servicemonitor.yaml").read_text())
    monitor["spec"]["endpoints"][0]["pathh"] = "/metrics"
    with pytest.raises(AssertionError):
        strictly(monitoring.ServiceMonitor, monitor)


def test_the_service_monitor_scrapes_the_service_at_metrics(with_component: list[dict[str, Any]]) -> None:
    monitor, service = kube.one(with_component, "ServiceMonitor"), kube.one(with_component, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_the_prometheus_rule_is_current() -> None:
    """prometheusrule.yaml is what `make kubernetes` writes from slo/ with the public URL of settings.env."""
    public = kube.env_file(kube.KUBE / "base" / "settings.env")["SLOGUARD_PUBLIC_URL"]
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    result = subprocess.run(
        [SLOGUARD, "slo", "rules", "slo/", "--format", "prometheusrule"],
        env=clean | {"SLOGUARD_PUBLIC_URL": public},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == PROMETHEUS_RULE.read_text(), "stale: run make kubernetes"
    urls = re.findall(r"runbook_url: (\S+)", result.stdout)
    assert urls and all(url.startswith(f"{public.rstrip('/')}/runbooks/") for url in urls)


def test_the_prometheus_rules_pass_promtool(with_component: list[dict[str, Any]], tmp_path: Path) -> None:
    rule = kube.one(with_component, "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    groups = {group["name"] for group in rule["spec"]["groups"]}
    prometheus_slos = [slo for slo in load_specs([REPO / "slo"]) if slo.is_prometheus]
    assert groups == {f"sloguard-slo-{slo.id}" for slo in prometheus_slos}
    # The log-based SLO is named in the committed file as evaluated by sloguard only.
    for slo in rules.evaluated_by_sloguard_only(load_specs([REPO / "slo"])):
        assert f"# Left out: {slo.id} " in PROMETHEUS_RULE.read_text()


# ---------------------------------------------------------------- the README


def test_the_readme_says_how_to_apply_each_overlay_and_why_there_is_no_helm_chart() -> None:
    readme = (REPO / "README.md").read_text()
    for overlay in kube.OVERLAYS:
        assert f"kubectl apply -k deploy/kubernetes/overlays/{overlay}" in readme
    assert "components/prometheus-operator" in readme and "make kubernetes" in readme
    assert "Helm" in readme
