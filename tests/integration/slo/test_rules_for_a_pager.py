"""`sloguard slo rules` for a pager: runbook links that open from anywhere, and the SLOs the rules leave
out (log-based SLIs, evaluated by sloguard only) said in the output and on stderr. Run as a user runs it;
the runbook page the links point at is served by a real `create_app` on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from app.main import create_app
from tests.conftest import REPO, make_settings, personal_token
from tests.prometheus import promtool
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
PUBLIC = "https://sloguard.example.org/base/"


def rules_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    return subprocess.run(
        [SLOGUARD, "slo", "rules", "slo/", *args],
        env=clean | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def runbook_urls(text: str, output_format: str = "rules") -> list[str]:
    document = yaml.safe_load(text)
    groups = document["spec"]["groups"] if output_format == "prometheusrule" else document["groups"]
    return [
        rule["annotations"]["runbook_url"]
        for group in groups
        for rule in group["rules"]
        if "alert" in rule and "runbook_url" in rule.get("annotations", {})
    ]


def test_runbook_urls_stay_as_written_without_a_public_url() -> None:
    result = rules_cli()
    assert result.returncode == 0, result.stderr
    urls = runbook_urls(result.stdout)
    assert len(urls) == 6  # page and ticket alerts of the three Prometheus SLOs
    assert set(urls) == {
        "runbooks/fraud-model-availability.md",
        "runbooks/fraud-model-latency.md",
        "runbooks/fraud-model-quality.md",
    }


@pytest.mark.parametrize("output_format", ["rules", "prometheusrule"])
def test_runbook_urls_are_absolute_with_the_public_url(output_format: str, tmp_path: Path) -> None:
    result = rules_cli("--format", output_format, SLOGUARD_PUBLIC_URL=PUBLIC)
    assert result.returncode == 0, result.stderr
    urls = runbook_urls(result.stdout, output_format)
    assert len(urls) == 6
    assert set(urls) == {
        f"https://sloguard.example.org/base/runbooks/fraud-model-{name}.md"
        for name in ("availability", "latency", "quality")
    }
    path = tmp_path / "rules.yaml"
    document = yaml.safe_load(result.stdout)
    path.write_text(yaml.safe_dump(document["spec"] if output_format == "prometheusrule" else document))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_runbook_base_url_wins_and_keeps_the_path_the_spec_wrote() -> None:
    result = rules_cli(
        "--runbook-base-url", "https://git.example.org/ml/slos/-/blob/main", SLOGUARD_PUBLIC_URL=PUBLIC
    )
    assert result.returncode == 0, result.stderr
    assert set(runbook_urls(result.stdout)) == {
        f"https://git.example.org/ml/slos/-/blob/main/runbooks/fraud-model-{name}.md"
        for name in ("availability", "latency", "quality")
    }


def test_an_absolute_runbook_url_in_a_spec_is_kept(tmp_path: Path) -> None:
    spec = (REPO / "slo" / "fraud-model.yaml").read_text()
    absolute = "https://wiki.example.org/runbooks/availability"
    (tmp_path / "s.yaml").write_text(spec.replace("runbooks/fraud-model-availability.md", absolute))
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    result = subprocess.run(
        [SLOGUARD, "slo", "rules", str(tmp_path / "s.yaml")],
        env=clean | {"SLOGUARD_PUBLIC_URL": PUBLIC},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    urls = runbook_urls(result.stdout)
    assert urls.count(absolute) == 2 and f"{PUBLIC}runbooks/fraud-model-latency.md" in urls


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--runbook-base-url", "git.example.org/x"], {}, "--runbook-base-url"),
        (["--format", "helm"], {}, "--format"),
        ([], {"SLOGUARD_PUBLIC_URL": "sloguard.example.org"}, "SLOGUARD_PUBLIC_URL"),
    ],
)
def test_a_bad_option_or_setting_is_one_clear_line(args: list[str], env: dict[str, str], named: str) -> None:
    result = rules_cli(*args, **env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"sloguard: {named}"), result.stderr


@pytest.mark.parametrize("output_format", ["rules", "prometheusrule"])
def test_the_elasticsearch_slo_is_named_in_the_output_and_on_stderr(
    output_format: str, tmp_path: Path
) -> None:
    out = tmp_path / "rules.yaml"
    result = rules_cli("--format", output_format, "-o", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    comments = [line for line in text.splitlines() if line.startswith("#")]
    (left_out,) = [line for line in comments if "fraud-model-prediction-errors" in line]
    assert "Elasticsearch" in left_out and "evaluated by sloguard only" in left_out
    assert "fraud-model-prediction-errors" not in yaml.safe_dump(yaml.safe_load(text))  # no rules for it
    (warning,) = [line for line in result.stderr.splitlines() if "fraud-model-prediction-errors" in line]
    assert warning.startswith("sloguard: left out:") and "evaluated by sloguard only" in warning


def test_prometheus_only_specs_have_no_left_out_note() -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    result = subprocess.run(
        [SLOGUARD, "slo", "rules", "slo/fraud-model.yaml"],
        env=clean,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "Left out" not in result.stdout and result.stderr == ""


def test_the_public_urls_runbook_link_opens_the_runbook_in_the_console(tmp_path: Path) -> None:
    """Where the links point: /runbooks/NAME, read from SLOGUARD_RUNBOOK_DIR, for a signed-in viewer."""
    shutil.copytree(REPO / "slo", tmp_path / "slo")
    shutil.copytree(REPO / "runbooks", tmp_path / "runbooks")
    settings = make_settings(tmp_path)
    token = personal_token(settings.database_url, "U0VIEW", "read")
    with UvicornThread(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            assert browser.get("/runbooks/fraud-model-availability.md").status_code in (303, 401)
            browser.get("/signin")
            signed = browser.post(
                "/signin", data={"token": token, "csrf": browser.cookies["sloguard_signin"], "next": "/"}
            )
            assert signed.status_code == 303, signed.text
            page = browser.get("/runbooks/fraud-model-availability.md")
            missing = browser.get("/runbooks/no-such-runbook.md")
            (tmp_path / "runbooks" / "latin1.md").write_bytes(b"# Runbook: caf\xe9 <script>x</script>\n")
            latin1 = browser.get("/runbooks/latin1.md")
            outside = browser.get("/runbooks/..%2Fslo%2Ffraud-model.yaml")
    assert page.status_code == 200, page.text
    assert "<h1>Runbook: fraud-model availability</h1>" in page.text
    assert "slos: [fraud-model-availability]" not in page.text  # the front matter is for the lint
    assert missing.status_code == 404 and outside.status_code == 404
    # A file that is not UTF-8 is shown (the byte replaced), not a 500; its markup is not run.
    assert latin1.status_code == 200 and "caf\ufffd" in latin1.text and "<script>x" not in latin1.text
