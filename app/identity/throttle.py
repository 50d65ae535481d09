"""Failed credential attempts, counted per client address (on this replica).

After LIMIT failures within WINDOW seconds, every request from that address that presents a credential
is answered 429 until the oldest of those failures is WINDOW old; meanwhile no presented token is even
looked at, so the answers say nothing about it. The addresses remembered are bounded (least recently
failed forgotten first), so a flood from many addresses cannot grow it without end.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

LIMIT = 10
WINDOW = 60.0
ADDRESSES = 10_000


class Throttle:
    def __init__(
        self,
        limit: int = LIMIT,
        window: float = WINDOW,
        addresses: int = ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.addresses, self.clock = limit, window, addresses, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float | None:
        """Seconds until `address` may try again, or None when it may now."""
        now = self.clock()
        with self._lock:
            failures = self._failures.get(address)
            if failures is None:
                return None
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[address]
                return None
            if len(failures) < self.limit:
                return None
            return failures[0] + self.window - now

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            failures = self._failures.pop(address, None) or deque(maxlen=self.limit)
            failures.append(now)
            self._failures[address] = failures  # the most recent failure last
            while len(self._failures) > self.addresses:
                self._failures.popitem(last=False)
