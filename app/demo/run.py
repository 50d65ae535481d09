"""Drive the demo story end to end: burn -> incident -> Slack -> rollback -> recovery -> review draft.

Everything runs on loopback: real Prometheus and Alertmanager (Debian's packages), real MLflow when it is
installed (otherwise the model server's signed deploy webhook), sloguard itself with a throwaway SQLite
database, and a console stand-in for Slack. The driver plays two engineers, alice and bob, sending signed
slash commands and button clicks to sloguard's Slack endpoint as Slack would.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from rich.console import Console
from slack_sdk.signature import SignatureVerifier

from app.config import Settings
from app.demo import stack
from app.demo.console import ConsoleSlack
from app.demo.story import MODEL, FraudModel, ModelServer, story
from app.slo import rules
from app.slo.spec import load_specs

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
SLO_ID = "fraud-model-availability"
ALICE, BOB = "U0ALICE", "U0BOB"
CHANNEL = "C-INCIDENTS"
DEPLOY_SECRET_ENV = "DEMO_DEPLOY_SECRET"
STEP = 15  # seconds between backfilled samples

SLO_FILE = """\
# The demo's SLO, in OpenSLO v1: 99.9 % of scoring requests succeed over a rolling day. A one-day
# period scales the burn-rate windows down (1h/5m becomes 2m/1m), so the demo sees a page and a
# recovery in minutes; a production SLO would say 28d or 30d.
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
  displayName: Fraud model availability
  labels:
    model: fraud-model
    owner: ml-platform
  annotations:
    runbook_url: runbooks/fraud-model-availability.md
spec:
  description: 99.9% of scoring requests succeed (no 5xx) over a rolling day.
  service: fraud-model
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 1d
      isRolling: true
  objectives:
    - displayName: scoring requests succeed
      target: 0.999
  indicator:
    metadata:
      name: fraud-model-5xx
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{service="fraud-model",code=~"5.."}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{service="fraud-model"}
"""

RUNBOOK = """\
---
slos: [fraud-model-availability]
models: [fraud-model]
---
# Runbook: fraud-model availability (demo)

1. Acknowledge: `/incident ack ID`.
2. Read the incident message: the suspect version, the version before it, drift per feature.
3. If a version rolled out shortly before the burn fails more than the one before it, roll it back:
   `/rollback fraud-model` and confirm. sloguard checks the burn stopped.
4. If nothing changed in the model, check the feature pipeline (drift) and the dependencies.
"""


def sloguard_yaml(target: dict[str, Any], registry: bool) -> str:
    model: dict[str, Any] = {
        "slos": [SLO_ID],
        "services": ["fraud-model"],
        "selector": 'service="fraud-model"',
        "lookback": 7200,
        "drift": {"gauge_metric": "ml_feature_drift_score", "gauge_threshold": 0.1},
        "environments": {"prod": {"target": target, "rollback": [ALICE, BOB], "verify_for": 60}},
    }
    if registry:
        model["registry"] = {"name": MODEL, "aliases": {"prod": "champion"}}
    config = {
        # The default batch mode: the recording rules start with the demo, so until they have run for
        # the SLO's day its budget comes from the raw history (app/slo/coverage.py).
        "incidents": {"renotify_after": 0},
        "slack": {"responders": [ALICE, BOB]},
        "models": {MODEL: model},
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@dataclass
class Outcome:
    incident: dict[str, Any] = field(default_factory=dict)
    registry: str = ""
    serving_before: str = ""
    serving_after: str = ""
    rollback: dict[str, Any] = field(default_factory=dict)
    draft: Path | None = None
    charts: list[Path] = field(default_factory=list)


class DemoFailed(RuntimeError):
    """A step did not happen in time; the message says which and where the servers' logs are."""


def _data_folders(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name in ("prometheus-data", "am-data", "mlflow.db")]


class Demo:
    def __init__(self, output: Path, console: Console, registry: str = "auto") -> None:
        self.output, self.console, self.registry_choice = output, console, registry
        self.started = time.monotonic()
        self.outcome = Outcome()
        self.work: Path | None = None
        self.api_token = secrets.token_urlsafe(24)
        self.webhook_token = secrets.token_urlsafe(24)
        self.signing_secret = secrets.token_hex(16)
        self.deploy_secret = secrets.token_hex(16)

    # ------------------------------------------------------------ output

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"[bold green]✔[/bold green] [dim]{elapsed:5.1f}s[/dim]  {text}")

    def detail(self, text: str) -> None:
        self.console.print(f"           {text}")

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float) -> Any:
        found: list[Any] = []

        def check() -> bool:
            value = predicate()
            if value:
                found.append(value)
            return bool(value)

        with self.console.status(what):
            stack.wait_until(check, timeout=timeout, interval=0.5, what=what)
        return found[-1]

    # ------------------------------------------------------------ sloguard's API and Slack endpoint

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.api_token}"}
        response = httpx.request(method, f"{self.sloguard}{path}", headers=headers, timeout=15, **kwargs)
        response.raise_for_status()
        return response.json()

    def _signed_post(self, body: str) -> httpx.Response:
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(self.signing_secret).generate_signature(timestamp=timestamp, body=body)
        headers = {
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature or "",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        response = httpx.post(f"{self.sloguard}/slack/events", content=body, headers=headers, timeout=15)
        response.raise_for_status()
        return response

    def slash(self, user: str, command: str, text: str) -> dict[str, Any]:
        """Type a slash command as `user`; the answer sloguard posts to response_url."""
        name = {ALICE: "alice", BOB: "bob"}[user]
        self.console.print(f"[bold magenta]{name}[/bold magenta] types [bold]{command} {text}[/bold]")
        seen = len(self.slack.called(f"/response/{name}"))
        fields = {
            "command": command,
            "text": text,
            "user_id": user,
            "user_name": name,
            "channel_id": CHANNEL,
            "team_id": "T-DEMO",
            "response_url": self.slack.response_url(name),
            "trigger_id": "demo.1",
        }
        self._signed_post(urlencode(fields))
        replies = self.wait(
            f"waiting for sloguard to answer {command}",
            lambda: self.slack.called(f"/response/{name}")[seen:],
            timeout=20,
        )
        reply: dict[str, Any] = replies[0]
        return reply

    def click(self, user: str, action_id: str, value: str, label: str) -> dict[str, Any]:
        name = {ALICE: "alice", BOB: "bob"}[user]
        self.console.print(f"[bold magenta]{name}[/bold magenta] clicks [bold]{label}[/bold]")
        seen = len(self.slack.called(f"/response/{name}"))
        payload = {
            "type": "block_actions",
            "user": {"id": user, "name": name},
            "team": {"id": "T-DEMO"},
            "channel": {"id": CHANNEL},
            "response_url": self.slack.response_url(name),
            "trigger_id": "demo.2",
            "actions": [{"action_id": action_id, "value": value, "type": "button", "block_id": "demo"}],
        }
        self._signed_post(urlencode({"payload": json.dumps(payload)}))
        replies = self.wait(
            "waiting for sloguard to answer the click",
            lambda: self.slack.called(f"/response/{name}")[seen:],
            timeout=60,
        )
        reply: dict[str, Any] = replies[0]
        return reply

    # ------------------------------------------------------------ the story

    def run(self) -> Outcome:
        with contextlib.ExitStack() as cleanup:
            try:
                self._run(cleanup)
            except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
                kept = self.output / "demo-logs"
                if self.work is not None:
                    shutil.copytree(self.work, kept, dirs_exist_ok=True, ignore=_data_folders)
                raise DemoFailed(f"{exc} (logs of every server: {kept})") from exc
        return self.outcome

    def _run(self, cleanup: contextlib.ExitStack) -> None:
        for name in ("prometheus", "promtool", "prometheus-alertmanager"):
            stack.binary(name)  # fails early with the install command
        work = self.work = Path(tempfile.mkdtemp(prefix="sloguard-demo-"))
        cleanup.callback(shutil.rmtree, work, True)
        self.output.mkdir(parents=True, exist_ok=True)
        self.console.rule("[bold]sloguard demo[/bold]: a fraud-detection model burns its error budget")
        self.detail(f"[dim]working folder (removed at the end): {work}[/dim]")

        # 1. The story so far, backfilled into Prometheus.
        now = time.time()
        model_port, sloguard_port = stack.free_port(), stack.free_port()
        self.sloguard = f"http://127.0.0.1:{sloguard_port}"
        model = FraudModel(story(now), instance=f"127.0.0.1:{model_port}")
        end = int(now) // STEP * STEP
        openmetrics = work / "history.om"
        stack.write_openmetrics(
            openmetrics, model.history(), int(model.phases[0].start) // STEP * STEP, end, STEP
        )
        stack.backfill(openmetrics, work / "prometheus-data")
        self.step("Backfilled 26 h of the fraud model's traffic into Prometheus (promtool)")
        for phase in model.phases:
            self.detail(
                f"from {time.strftime('%H:%M', time.localtime(phase.start))}: version {phase.version}, "
                f"{phase.error_ratio:.2%} errors, {phase.slow_ratio:.1%} slower than 250 ms, "
                f"`amount` drift PSI {phase.drift['amount']:.2f}"
            )
        server = ModelServer(model, model_port, self.deploy_secret).start()
        cleanup.callback(server.stop)

        # 2. SLO, generated rules, Alertmanager, Prometheus.
        for folder in ("slo", "runbooks"):
            (work / folder).mkdir()
        (work / "slo" / "fraud-model.yaml").write_text(SLO_FILE)
        (work / "runbooks" / "fraud-model-availability.md").write_text(RUNBOOK)
        slos = load_specs([work / "slo"])
        rule_file = work / "rules.yml"
        rule_file.write_text(rules.render(slos))
        self.step(f"Wrote {len(slos)} SLO ({SLO_ID}, 99.9 % over 1 day) and its Prometheus rules")
        alertmanager = stack.AlertmanagerServer(
            work, f"{self.sloguard}/webhooks/alertmanager", self.webhook_token, group_interval="1s"
        ).start()
        cleanup.callback(alertmanager.stop)
        prometheus = stack.PrometheusServer(
            work / "prometheus-data",
            [rule_file],
            evaluation_interval="1s",
            alertmanager=alertmanager.url,
            scrape={"fraud-model": model.instance},
        ).start()
        cleanup.callback(prometheus.stop)
        self.step(f"Started Prometheus ({prometheus.url}) and Alertmanager ({alertmanager.url})")

        # 3. The registry: real MLflow if installed, else the model server's deploy webhook.
        mlflow_url = self._registry(work, cleanup, server)

        # 4. sloguard with a throwaway database and the console Slack.
        self.slack = cleanup.enter_context(ConsoleSlack(self.console))
        settings = self._settings(work, prometheus.url, mlflow_url)
        self._serve(settings, sloguard_port, cleanup, work)
        self.step(
            f"Started sloguard ({self.sloguard}) with a throwaway SQLite database; Slack is this terminal"
        )

        # 5. Breach -> incident with evidence.
        incident = self.wait(
            "waiting for the SLO breach and the incident",
            lambda: next(iter(self.api("GET", "/api/v1/incidents")), None),
            timeout=90,
        )
        number = incident["id"]
        status = self._slo_status()
        windows = status.get("windows") or {}
        shown = ", ".join(
            f"{name} {figures['burn_rate']:.1f}×"
            for name, figures in windows.items()
            if figures.get("burn_rate") is not None
        )
        self.step(f"SLO breach: {SLO_ID} at {status.get('state')} level (page at 14.4× over 2m and 1m)")
        self.detail(f"burn rates: {shown}")
        remaining = status.get("budget_remaining")
        if remaining is not None:
            self.detail(f"error budget left for the day: {remaining:.0%}")
        self.step(f"Incident #{number} opened: {incident['title']} ({incident['severity']})")
        found = self.wait(
            "waiting for the ML evidence (versions, suspect, drift)",
            lambda: self._evidence(number),
            timeout=60,
        )
        suspect = next(v for v in found["model_versions"] if v["role"] == "suspect")
        self.detail(f"suspect: version {suspect['version']}: {suspect['detail'].get('reason', '')}")
        for signal_row in found["drift_signals"]:
            marker = "drifting" if signal_row["drifted"] else "stable"
            if signal_row["judged_by"] == "model_server":  # the API says whose judgement it is
                self.detail(
                    f"drift: `{signal_row['feature']}` {signal_row['score']:.2f} by the model server's own "
                    f"score (threshold {signal_row['threshold']:g}): {marker}"
                )
            else:
                self.detail(
                    f"drift: `{signal_row['feature']}` {signal_row['method']} {signal_row['score']:.2f} "
                    f"(threshold {signal_row['threshold']:.3g}): {marker}"
                )

        alerts = self.wait(
            "waiting for Prometheus' alert to come through Alertmanager",
            lambda: self.api("GET", f"/api/v1/incidents/{number}").get("alerts"),
            timeout=60,
        )
        names = sorted(
            {f"{a['labels'].get('alertname')} ({a['labels'].get('sloth_severity')})" for a in alerts}
        )
        self.step(f"Alertmanager's notification joined incident #{number}: {', '.join(names)}")

        # 6. Slack: acknowledge, roll back, confirm.
        self.slash(ALICE, "/incident", f"ack {number}")
        self.step(f"alice acknowledged incident #{number}")
        proposal = self.slash(ALICE, "/rollback", MODEL)
        button = next(
            element
            for block in proposal.get("blocks", [])
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("action_id") == "rollback_confirm"
        )
        self.step("sloguard proposed the rollback privately, with a confirm button")
        self.click(ALICE, "rollback_confirm", button["value"], "Roll back (confirm)")
        serving = self.wait(
            "waiting for the model server to serve the rolled-back version",
            lambda: model.serving.version if model.serving.version != self.outcome.serving_before else None,
            timeout=30,
        )
        self.outcome.serving_after = serving
        where = "MLflow alias `champion`" if self.outcome.registry == "mlflow" else "signed deploy webhook"
        self.step(f"Rolled back through the {where}: version {self.outcome.serving_before} → {serving}")
        if self.outcome.registry == "mlflow":
            self.detail(f"MLflow now says champion = version {self._mlflow.alias(MODEL, 'champion')}")

        # 7. Verify the burn stopped, then resolve.
        action = self.wait(
            "watching the burn for 60 s after the change (sloguard's verify step)",
            lambda: self._verified(number),
            timeout=150,
        )
        self.outcome.rollback = action
        self.step(f"Verify: {(action.get('verification') or {}).get('text', action['state'])}")
        self.slash(ALICE, "/incident", f"resolve {number}")
        self.step(f"alice resolved incident #{number}")

        # 8. The review draft.
        draft = self.wait(
            "waiting for the review draft (written once the impact window has closed, a step after recovery)",
            lambda: sorted(self.output.glob(f"*-{number}-*.md")),
            timeout=240,
        )[0]
        self.outcome.draft = draft
        self.outcome.charts = sorted(draft.parent.glob(f"{draft.stem}*/*.svg")) or sorted(
            p for p in draft.parent.rglob("*.svg") if str(number) in p.parent.name
        )
        self.outcome.incident = self.api("GET", f"/api/v1/incidents/{number}")
        self.step(f"Review draft written: {draft}")
        for chart in self.outcome.charts:
            self.detail(f"chart: {chart}")
        took = time.monotonic() - self.started
        self.console.rule(f"done in {took:.0f} s; everything the demo started is stopped")

    def _registry(self, work: Path, cleanup: contextlib.ExitStack, server: ModelServer) -> str | None:
        executable = stack.mlflow_binary(REPO) if self.registry_choice in ("auto", "mlflow") else None
        if self.registry_choice == "mlflow" and executable is None:
            raise stack.MissingBinary(
                "mlflow not found: install it (pip install mlflow) or use --registry webhook"
            )
        self.outcome.serving_before = server.model.serving.version
        if executable is None:
            self.outcome.registry = "webhook"
            os.environ[DEPLOY_SECRET_ENV] = self.deploy_secret
            cleanup.callback(os.environ.pop, DEPLOY_SECRET_ENV, None)
            self.target = {
                "kind": "http_webhook",
                "url": f"http://{server.model.instance}/deploy",
                "secret_env": DEPLOY_SECRET_ENV,
                "timeout": 5,
            }
            self.step("No MLflow here: the rollback target is the model server's signed deploy webhook")
            return None
        folder = work / "mlflow"
        folder.mkdir()
        with self.console.status("starting MLflow (its server takes a few seconds)"):
            mlflow = stack.MlflowServer(folder, executable).start()
        cleanup.callback(mlflow.stop)
        mlflow.register(MODEL, 4)
        mlflow.set_alias(MODEL, "champion", server.model.serving.version)
        server.watch_alias(lambda: mlflow.alias(MODEL, "champion"))
        self._mlflow = mlflow
        self.outcome.registry = "mlflow"
        self.target = {"kind": "mlflow_alias"}
        self.step(f"Started MLflow ({mlflow.url}): model `{MODEL}` versions 1-4, alias champion → 4")
        return mlflow.url

    def _settings(self, work: Path, prometheus_url: str, mlflow_url: str | None) -> Settings:
        (work / "sloguard.yaml").write_text(sloguard_yaml(self.target, mlflow_url is not None))
        return Settings(
            database_url=f"sqlite:///{work / 'sloguard.db'}",
            api_token=self.api_token,
            webhook_token=self.webhook_token,
            prometheus_url=prometheus_url,
            elasticsearch_url=None,
            mlflow_url=mlflow_url,
            slack_bot_token="xoxb-demo-" + secrets.token_hex(8),
            slack_signing_secret=self.signing_secret,
            slack_api_url=self.slack.api_url,
            slack_channel=CHANNEL,
            slack_app_token=None,
            public_url=None,
            slo_dir=work / "slo",
            runbook_dir=work / "runbooks",
            postmortem_dir=self.output,
            config_file=work / "sloguard.yaml",
            eval_interval=5.0,
            scheduler_enabled=True,
            source_timeout=5.0,
        )

    def _serve(self, settings: Settings, port: int, cleanup: contextlib.ExitStack, work: Path) -> None:
        from app.main import create_app

        handler = logging.FileHandler(work / "sloguard.log")
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)

        def restore() -> None:
            root.handlers[:], level = saved
            root.setLevel(level)
            handler.close()

        cleanup.callback(restore)
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=15)

        cleanup.callback(stop)
        stack.wait_until(lambda: server.started, timeout=30, what=f"sloguard on {self.sloguard}")

    def _slo_status(self) -> dict[str, Any]:
        listed = self.api("GET", "/api/v1/slos")
        items = listed.get("items", listed) if isinstance(listed, dict) else listed
        return next((item for item in items if item.get("id") == SLO_ID), {})

    def _evidence(self, number: int) -> dict[str, Any] | None:
        found: dict[str, Any] = self.api("GET", f"/api/v1/incidents/{number}")
        roles = {v["role"] for v in found.get("model_versions", [])}
        return found if "suspect" in roles and found.get("drift_signals") else None

    def _verified(self, number: int) -> dict[str, Any] | None:
        found = self.api("GET", f"/api/v1/incidents/{number}")
        for event in found.get("timeline", []):
            action_id = (event.get("data") or {}).get("action_id")
            if event.get("kind") == "rollback" and action_id:
                action: dict[str, Any] = self.api("GET", f"/api/v1/rollbacks/{action_id}")
                if action.get("state") in ("verified", "not_recovered"):
                    return action
        return None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so a supervisor stopping the demo leaves nothing running."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(output: Path, registry: str = "auto", console: Console | None = None) -> Outcome:
    # Not a terminal (a log, a pipe): lines are not wrapped, so a file path stays one piece to copy.
    demo = Demo(output, console or Console(soft_wrap=not sys.stdout.isatty()), registry)
    with sigterm_as_interrupt():
        return demo.run()
