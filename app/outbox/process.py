"""The delivery worker in a process of its own: what `sloguard serve` runs on PostgreSQL.

Python runs one thread at a time per process, so a worker in the web server's process takes its CPU
(claiming, drawing Slack messages, drawing a review's charts, gathering evidence) from the requests the
server is answering: an alert storm's intake was 15 % slower with it. In a child process it runs beside
them, on another core. The parent (`ChildWorker`) starts it, starts it again if it exits, stops it when
the server stops, wakes it through a pipe when it commits a row (other replicas' rows are found by the
child's poll), and counts on its own /metrics what the child reports through another (each delivery and
each dead row); it measures the backlog and prunes delivered rows itself. The child stops when its parent
goes, however it goes (on Linux the kernel tells it; elsewhere it notices within a second).

SQLite stays with threads in the server's process: there one process writes, in turns it hands out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

from sqlalchemy.engine import Engine

from app.config import Settings
from app.outbox import CHAT, WORK, _waker, forward_wakes

log = logging.getLogger(__name__)

EVENTS = ("delivered", "dead")
LANE_BYTES = {CHAT: b"c", WORK: b"w"}
PR_SET_PDEATHSIG = 1
NICENESS = 10
RESTART_FIRST, RESTART_CAP = 1.0, 30.0  # seconds between restarts of a child that keeps exiting


class ChildWorker:
    """Runs `python -m app outbox worker` as a child of this process, for as long as `stop` is not
    called: a child that exits (crashed, killed, out of memory) is started again, at most every 30 s."""

    def __init__(self, engine: Engine, replica: str, metrics: Any, *, stop_timeout: float = 15.0) -> None:
        self.replica, self.metrics, self.stop_timeout = replica, metrics, stop_timeout
        self._wake_fd: int | None = None  # the parent's end of the child's wake pipe
        self._wake_guard = threading.Lock()  # never a write to a number closed (and maybe reused)
        # Every row this process commits wakes the child's worker for its lane at once (other
        # replicas' rows are found by its poll).
        forward_wakes(engine, self._wake)
        self.pid: int | None = None
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # The supervising thread starts the child and lives as long as it does: on Linux the child's
        # "parent died" signal follows the thread that started it.
        self._thread = threading.Thread(target=self._supervise, name="outbox-child", daemon=True)
        self._thread.start()

    def describe(self) -> dict[str, Any]:
        return {"in": "child process", "pid": self.pid, "restarts": max(0, self.starts - 1)}

    def stop(self) -> None:
        """Ask the child to stop (it lets deliveries in progress finish), then wait for it."""
        self._stop.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("outbox worker did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(self.stop_timeout)

    def _supervise(self) -> None:
        wait = RESTART_FIRST
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                code = self._run_once()
            except Exception:
                log.exception("supervising the outbox worker process failed")
                code = None
            if self._stop.is_set():
                return
            log.error(
                "outbox worker process exited; starting it again",
                extra={"pid": self.pid, "exit_code": code, "restart_in_seconds": wait},
            )
            if time.monotonic() - started > 2 * RESTART_CAP:
                wait = RESTART_FIRST  # it had been running a good while: not a child that keeps exiting
            if self._stop.wait(wait):
                return
            wait = min(RESTART_CAP, wait * 2)

    def _wake(self, lane: str) -> None:
        with self._wake_guard:
            if self._wake_fd is None:
                return
            try:
                os.write(self._wake_fd, LANE_BYTES.get(lane, b"w"))
            except OSError:
                pass  # a full pipe: the child has wakes enough to read; a broken one: it is restarting

    def _run_once(self) -> int:
        """Start the child and count its reports until it exits; its exit code."""
        read_end, write_end = os.pipe()  # reports: child -> parent
        wake_read, wake_write = os.pipe()  # wakes: parent -> child
        os.set_blocking(wake_write, False)  # a commit never waits for the child
        command = [sys.executable, "-m", "app", "outbox", "worker", "--parent-pid", str(os.getpid())]
        command += ["--report-fd", str(write_end), "--wake-fd", str(wake_read), "--replica", self.replica]
        try:
            process = subprocess.Popen(command, pass_fds=(write_end, wake_read))
        except BaseException:
            os.close(read_end)
            os.close(wake_write)
            raise
        finally:
            os.close(write_end)  # the child's copy is the only one left: EOF when it exits
            os.close(wake_read)
        with self._wake_guard:
            self._wake_fd = wake_write
        self._process, self.pid = process, process.pid
        self.starts += 1
        log.info("outbox worker process started", extra={"pid": process.pid})
        try:
            with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as reports:
                self._count(reports)
            return process.wait()
        finally:
            with self._wake_guard:
                self._wake_fd = None
                os.close(wake_write)

    def _count(self, reports: IO[str]) -> None:
        for line in reports:
            event, _, kind = line.strip().partition(" ")
            if event in EVENTS and kind and self.metrics is not None:
                counter = self.metrics.outbox_delivered if event == "delivered" else self.metrics.outbox_dead
                counter.labels(kind).inc()


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM when the parent goes (Linux); the caller also polls for it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the poll in run_child notices within a second
    if os.getppid() != parent_pid:  # gone already, before the signal was asked for
        raise SystemExit(0)


def _wakes(engine: Engine, wake_fd: int, stop: threading.Event) -> None:
    """Wake this worker's lanes as the parent commits rows; the pipe's end means the parent is gone."""
    lanes = {byte: lane for lane, (byte,) in LANE_BYTES.items()}
    while True:
        try:
            received = os.read(wake_fd, 512)
        except OSError:
            received = b""
        if not received:
            stop.set()
            return
        for byte in set(received):
            if byte in lanes:
                _waker(engine, lanes[byte]).set()


def run_child(
    settings: Settings,
    *,
    parent_pid: int | None,
    report_fd: int | None,
    replica: str,
    wake_fd: int | None = None,
) -> None:
    """The child's life: build the same services as `serve`, deliver until told to stop (SIGTERM,
    SIGINT) or until the parent is gone, then let deliveries in progress finish."""
    from app.config import load_file_config
    from app.services import build_services
    from app.slo.spec import load_specs

    if parent_pid is not None:
        _die_with_parent(parent_pid)
    # Background work: when the CPUs are busy the requests go first (the child still gets its share,
    # about a tenth of a busy CPU at this niceness, so deliveries slow down but never stop).
    os.nice(NICENESS)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    report = os.fdopen(report_fd, "w", encoding="utf-8", buffering=1) if report_fd is not None else None
    guard = threading.Lock()

    def counted(event: str, kind: str) -> None:
        if report is None:
            return
        with guard:
            try:
                report.write(f"{event} {kind}\n")
            except OSError:
                pass  # the parent is gone; the poll below ends this process

    file_config = load_file_config(settings.config_file)
    specs = load_specs([settings.slo_dir]) if settings.slo_dir.exists() else []
    services = build_services(settings, file_config, specs)
    try:
        services.start_worker(replica, counted=counted, measure=False)
        if wake_fd is not None:
            args = (services.engine, wake_fd, stop)
            threading.Thread(target=_wakes, args=args, name="outbox-wakes", daemon=True).start()
        log.info("outbox worker process delivering", extra={"parent_pid": parent_pid})
        while not stop.wait(1.0):
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("outbox worker's parent is gone; stopping")
                break
    finally:
        services.close()  # stops the worker: deliveries in progress finish, the rest stay in the outbox
        if report is not None:
            try:
                report.close()
            except OSError:
                pass
