"""Real servers on loopback for the tests: uvicorn in a thread, a TCP proxy that can cut a connection."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

from app.demo.stack import free_port, stop_process, wait_until

__all__ = ["TcpProxy", "UvicornThread", "free_port", "get_json", "serve", "stop_process", "wait_until"]


class UvicornThread:
    """Serve an ASGI app on 127.0.0.1:<free port> in a daemon thread; `url` is its base URL."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="auto")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        wait_until(lambda: self.server.started, what=f"uvicorn on {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    with UvicornThread(app) as server:
        yield server.url


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops every connection and refuses new ones.

    Used to take a real database or source away from a running service without stopping the server
    that other tests share. `cut()` closes both sides, so the target sees its clients leave at once;
    `partition()` closes only the client's side and leaves the target's open and silent, as a network
    partition does: the target notices only through its own timeouts.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        # Bound here, so no other process can take the port between choosing and binding it.
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._listener.settimeout(0.1)
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []  # (client side, target side)
        self._silent: set[socket.socket] = set()  # target sides a partition keeps open
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                ending = [sock for sock in (src, dst) if sock not in self._silent]
            for sock in ending:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self._silent.clear()
        for client, upstream in pairs:
            _close(client)
            _close(upstream)

    def partition(self) -> None:
        """Like `cut()` for the clients; the target keeps its connections, which carry nothing more."""
        self._open.clear()
        with self._lock:
            self._silent.update(upstream for _, upstream in self._pairs)
            clients = [client for client, _ in self._pairs]
        for client in clients:
            _close(client)

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=2)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def get_json(url: str, **kwargs: Any) -> Any:
    response = httpx.get(url, timeout=10, **kwargs)
    response.raise_for_status()
    return response.json()
