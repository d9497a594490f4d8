"""Progress of long operations: counted in the domain code, shown by whoever runs it.

Domain functions take a `Progress`; the CLI draws it on a terminal, Dagster ops log it every
few seconds. Both may listen at once.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

Listener = Callable[["Progress"], None]

_process_listeners: list[Listener] = []


def add_process_listener(listener: Listener) -> None:
    """Listen to every Progress made in this process (the CLI's terminal display)."""
    _process_listeners.append(listener)


def remove_process_listener(listener: Listener) -> None:
    if listener in _process_listeners:
        _process_listeners.remove(listener)


class Progress:
    def __init__(self, interval: float = 5.0, listeners: list[Listener] | None = None):
        self.phase = "starting"
        self.bytes = 0
        self.documents = 0
        self.started = self.phase_started = time.monotonic()
        self.interval = interval
        self._listeners = list(listeners or [])
        self._last_report = 0.0
        self._lock = threading.Lock()

    def set_phase(self, phase: str) -> None:
        """A new phase counts its bytes (and their rate) from zero: a restore reads the archive
        once to check its sha256, then again to verify it; the two are not one amount."""
        with self._lock:
            if phase != self.phase:
                self.phase, self.bytes, self.phase_started = phase, 0, time.monotonic()
        self._report(force=True)

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n
        self._report()

    def add_document(self) -> None:
        with self._lock:
            self.documents += 1
        self._report()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def describe(self, elapsed: float | None = None) -> str:
        """One line; `elapsed` replaces this Progress's own time (a display spanning several
        steps, each with a Progress of its own, shows the whole operation's)."""
        in_phase = time.monotonic() - self.phase_started
        rate = self.bytes / in_phase / 1e6 if in_phase > 0 else 0.0
        shown = self.elapsed if elapsed is None else elapsed
        return (f"{self.phase}: {human_bytes(self.bytes)}, {self.documents} documents, "
                f"{rate:.1f} MB/s, {shown:.0f}s elapsed")

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        for listener in _process_listeners:
            listener(self)
        if self._listeners and (force or now - self._last_report >= self.interval):
            self._last_report = now
            for listener in self._listeners:
                listener(self)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class TerminalDisplay:
    """One status line on stderr, redrawn at most ten times a second."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self.stream.write("\r\033[K" + progress.describe(elapsed=now - self.started))
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()
