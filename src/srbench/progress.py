"""Progress of long loops (download, prepare, train, evaluate, upscale): a tqdm bar on a terminal,
plain log lines elsewhere (log files, CI, DVC's captured output).

``SRBENCH_PROGRESS`` chooses: ``bar`` (a tqdm bar even when stderr is not a terminal), ``lines``
(a log line at the start, at most every :data:`LINE_SECONDS` and at the end) or ``off``; unset,
a bar when the stream is a terminal, else lines. While a bar is drawn, log records for the
console are written above it (tqdm's logging redirect), so that they do not break it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Any

from srbench.errors import SrbenchError

logger = logging.getLogger(__name__)

MODES = ("bar", "lines", "off")
ENVIRONMENT = "SRBENCH_PROGRESS"

#: Seconds between two log lines of one loop in ``lines`` mode (besides the first and the last).
LINE_SECONDS = 10.0

_open_bars = 0  # bars drawn now; the outermost one redirects console logging above them


def progress_mode(stream: IO[str] | None = None) -> str:
    """``bar``, ``lines`` or ``off``: :data:`ENVIRONMENT` when set, else ``bar`` when ``stream``
    (default: stderr) is a terminal and ``lines`` when it is not."""
    chosen = os.environ.get(ENVIRONMENT, "").strip().lower()
    if chosen:
        if chosen not in MODES:
            raise SrbenchError(f"{ENVIRONMENT}={chosen!r}: choose one of {', '.join(MODES)}")
        return chosen
    stream = sys.stderr if stream is None else stream
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "lines"


def _columns(stream: IO[str]) -> int | None:
    """The width of the terminal ``stream`` writes to (0 when a terminal does not say, as a new
    pseudo-terminal), None for no terminal."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # no file descriptor, or not a terminal
        return None


def format_seconds(seconds: float) -> str:
    """``1m05s``, or ``?`` when not finite."""
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _count(count: float, unit: str) -> str:
    """A count in ``unit``s as shown in log lines: bytes in MiB."""
    return f"{count / 2**20:.1f}" if unit == "B" else f"{count:g}"


def _units(unit: str) -> str:
    return "MiB" if unit == "B" else f"{unit}s"


def _rate(rate: float, unit: str) -> str:
    if unit == "B":
        return f"{rate / 2**20:.1f} MiB/s"
    return f"{rate:.{2 if rate < 100 else 0}f} {unit}s/s"


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """How far a loop of ``total`` units (None: unknown) has come; see :func:`progress`."""

    def __init__(
        self,
        total: int | None,
        description: str,
        unit: str,
        initial: int,
        every: float | None,
        mode: str,
        stream: IO[str],
        log: logging.Logger,
        leave: bool,
    ) -> None:
        self.total, self.description, self.unit, self.every, self.log = total, description, unit, every, log
        self.mode, self.done, self.postfix = mode, initial, {}
        self._initial, self._started = initial, time.monotonic()
        self._last_line: float | None = None  # when the last log line was written
        self._last_line_done: int | None = None  # and at which count
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm  # imported here: the CLI answers without it

            scaled = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
            width = {"dynamic_ncols": True} if _columns(stream) else {"ncols": 80}  # a terminal of unknown width: tqdm would draw nothing
            self._bar = tqdm(total=total, desc=description, unit=unit, initial=initial, file=stream, leave=leave, **width, **scaled)
        elif mode == "lines" and every is not None:
            self._line()

    @property
    def drawing(self) -> bool:
        """Whether a bar is drawn (else the loop is followed in log lines, or not at all)."""
        return self._bar is not None

    def update(self, n: int = 1, **postfix: Any) -> None:
        """``n`` more units done; ``postfix`` values (e.g. ``loss=0.012``) are shown beside the count."""
        self.done += n
        self.postfix.update(postfix)
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({key: _value(value) for key, value in self.postfix.items()}, refresh=False)
            self._bar.update(n)
        elif self.mode == "lines" and self.every is not None:
            finished = self.total is not None and self.done >= self.total and self._last_line_done != self.done
            if finished or time.monotonic() - (self._last_line or self._started) >= self.every:
                self._line()

    def close(self) -> None:
        """End the bar, or log the last line if the loop ended before its total (or had none)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and self.every is not None and self._last_line_done != self.done:
            self._line()

    def _line(self) -> None:
        """One log line: ``DESCRIPTION: DONE/TOTAL UNITs (P%, RATE UNITs/s, eta 0m12s) key value``."""
        now = time.monotonic()
        self._last_line, self._last_line_done = now, self.done
        elapsed = now - self._started
        rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            counted, details = f"{_count(self.done, self.unit)} {_units(self.unit)}", _rate(rate, self.unit)
        else:
            counted = f"{_count(self.done, self.unit)}/{_count(self.total, self.unit)} {_units(self.unit)}"
            percent = 100.0 * self.done / self.total if self.total else 100.0
            remaining = max(self.total - self.done, 0)
            eta = 0.0 if remaining == 0 else remaining / rate if rate > 0 else math.inf
            details = f"{percent:.0f}%, {_rate(rate, self.unit)}, eta {format_seconds(eta)}"
        extra = "".join(f" {key} {_value(value)}" for key, value in self.postfix.items())
        self.log.info("%s: %s (%s)%s", self.description, counted, details, extra)


@contextmanager
def progress(
    total: int | None,
    description: str,
    unit: str = "it",
    *,
    initial: int = 0,
    every: float | None = LINE_SECONDS,
    stream: IO[str] | None = None,
    log: logging.Logger | None = None,
    mode: str | None = None,
    leave: bool = True,
) -> Iterator[Progress]:
    """Follow a loop of ``total`` ``unit``s (``"B"``: bytes, shown in MiB) named ``description``.

    A tqdm bar on ``stream`` (default: stderr) when it is a terminal (:func:`progress_mode`; ``mode``
    overrides), else a log line on ``log`` at the start, at most every ``every`` seconds and at the
    end; ``every=None``: no lines (the caller logs its own, e.g. training's line every N steps).
    ``leave=False`` erases the bar when done (a bar inside another loop's bar)."""
    global _open_bars
    stream = sys.stderr if stream is None else stream
    chosen = mode or progress_mode(stream)
    if chosen not in MODES:
        raise SrbenchError(f"progress mode {chosen!r}: choose one of {', '.join(MODES)}")
    with ExitStack() as stack:
        if chosen == "bar" and _open_bars == 0:
            from tqdm.contrib.logging import logging_redirect_tqdm

            stack.enter_context(logging_redirect_tqdm())
        tracker = Progress(total, description, unit, initial, every, chosen, stream, log or logger, leave)
        if tracker.drawing:
            _open_bars += 1
        try:
            yield tracker
        finally:
            if tracker.drawing:
                _open_bars -= 1
            tracker.close()
