"""Resumable, checksum-verified HTTP transfers (:func:`fetch`) and ``sha256sum``/``md5sum``
files (:func:`read_checksums`).

Transfers resume from a ``.part`` file, with or without a Content-Length from the server (a cut
transfer of unknown length is told apart from a complete one by the checksum, then by asking for
the bytes past its end). :class:`TransferLimits` bounds them: a per-read timeout, a minimum
average rate over a sliding window (a trickling connection is dropped and resumed, like a cut
one) and an overall deadline per archive; the ``.part`` file always stays for a later run.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from srbench.errors import DownloadError, SrbenchError
from srbench.files import file_digest, naming
from srbench.progress import progress

logger = logging.getLogger(__name__)


_ALGORITHMS = {32: "md5", 64: "sha256"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_CHUNK = 1 << 20
_KIB = 1 << 10
_ATTEMPTS = 3
_RETRY_DELAY_S = 2.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}|[0-9a-fA-F]{32}) [ *](\S.*)")


def _algorithm(checksum: str, owner: str) -> str:
    """The hash algorithm of a hex digest, told by its length (MD5: 32 digits, SHA-256: 64)."""
    algorithm = _ALGORITHMS.get(len(checksum))
    if algorithm is None or not _HEX.fullmatch(checksum):
        raise SrbenchError(
            f"{owner}: checksum {checksum!r} is neither an MD5 (32 hex digits) "
            "nor a SHA-256 (64 hex digits)"
        )
    return algorithm


@dataclass(frozen=True)
class TransferLimits:
    """When a download gives up. ``timeout``: seconds one read may wait; ``min_rate`` (bytes/s,
    0 for none) averaged over the last ``window`` seconds, else the connection is dropped and
    resumed (as many attempts as for a cut one); ``deadline``: seconds one archive may take in
    all, retries included (None for none).

    The defaults suit DIV2K's 3.5 GB training archive on a slow link: 16 KiB/s (128 kbit/s) is
    well below any usable connection yet far above a stalled or trickling one, a minute rides
    out short stalls, and 12 hours lets 3.5 GB through even at 1 Mbit/s (about 8 hours).
    """

    timeout: float = 60.0
    min_rate: float = 16 * _KIB
    window: float = 60.0
    deadline: float | None = 12 * 3600.0


class _Interrupted(Exception):
    """A transfer stopped early; the ``.part`` file is kept so that the next attempt resumes."""


class _OutOfTime(Exception):
    """A download ran past its deadline; it is not retried."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class _Watch:
    """Applies :class:`TransferLimits` to one download: its deadline (from the first attempt)
    and the average rate of the current connection over the last ``window`` seconds."""

    def __init__(self, limits: TransferLimits) -> None:
        self.limits = limits
        self.start = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque()

    def check_deadline(self, done: int) -> None:
        elapsed = time.monotonic() - self.start
        if self.limits.deadline is not None and elapsed > self.limits.deadline:
            raise _OutOfTime(
                f"not complete after {elapsed:.1f} s (deadline {self.limits.deadline:g} s), "
                f"{done} bytes received"
            )

    def begin(self, done: int) -> None:
        """A new connection starts with ``done`` bytes already in the file."""
        self.samples = deque([(time.monotonic(), done)])

    def update(self, done: int) -> None:
        """``done`` bytes are in the file now: raise if past the deadline or too slow."""
        self.check_deadline(done)
        now, window = time.monotonic(), self.limits.window
        if now - self.samples[-1][0] >= window / 20:  # a bounded number of samples per window
            self.samples.append((now, done))
        while len(self.samples) > 1 and self.samples[1][0] <= now - window:
            self.samples.popleft()
        since, then = self.samples[0]
        received = done - then
        if since <= now - window and received < self.limits.min_rate * window:
            raise _Interrupted(
                f"too slow: {received} bytes in the last {now - since:.1f} s, "
                f"under the minimum of {self.limits.min_rate:g} bytes/s"
            )


def _read(response: http.client.HTTPResponse) -> bytes:
    """What one receive brings (so that a trickle still returns control); b"" at the end."""
    try:
        return response.read1(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(str(exc) or type(exc).__name__) from exc


def _transfer(url: str, part: Path, timeout: float, watch: _Watch) -> bool:
    """One attempt: download ``url`` into ``part``, resuming from its current size.

    Returns whether the server's lengths show the file complete; False when it gave none, so
    that only the checksum can tell.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            logger.info("%s: nothing past byte %d, treating %s as complete", url, offset, part)
            return True
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except ValueError as exc:  # not a URL urllib can open
        raise DownloadError(f"{url}: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(str(exc) or type(exc).__name__) from exc
    with response:
        total = None
        if response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                part.unlink()
                raise _Interrupted(f"server resumed at the wrong offset (expected byte {offset})")
            mode, done = "ab", offset
            total = int(match.group(2)) if match.group(2) != "*" else None
            logger.info("%s: resuming at byte %d", url, offset)
        else:  # a 200 answer to a range request: the server starts over
            mode, done = "wb", 0
        length = response.headers.get("Content-Length", "")
        if total is None and length.isdigit():
            total = done + int(length)
        watch.begin(done)
        name = part.name.removesuffix(".part")
        with progress(total, f"download {name}", "B", initial=done, log=logger) as bar, naming(part), part.open(mode) as handle:
            while chunk := _read(response):
                handle.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                watch.update(done)
    if total is None:
        return False
    if done < total:
        raise _Interrupted(f"connection closed after {done} of {total} bytes")
    return True


def fetch(
    url: str,
    dest: Path,
    checksum: str,
    size: int | None = None,
    limits: TransferLimits = TransferLimits(),
) -> Path:
    """Download ``url`` to ``dest`` (resumable, retried, checksum-verified) and return ``dest``.

    ``checksum`` is an MD5 or SHA-256 hex digest (told apart by length). An existing ``dest``
    with the right checksum is reused; a wrong one is downloaded again. A transfer that fails
    (cut, stalled, too slow, past ``limits.deadline``) keeps its ``.part`` file for a later
    resume; a file that cannot be written raises ``OSError`` naming it, without retrying.
    """
    dest = Path(dest)
    algorithm = _algorithm(checksum, dest.name)
    expected = checksum.lower()
    if dest.exists():
        if file_digest(dest, algorithm=algorithm) == expected:
            logger.info("%s: cached", dest)
            return dest
        logger.warning("%s: checksum does not match, downloading it again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    logger.info("downloading %s -> %s", url, dest)
    watch, actual = _Watch(limits), None

    def kept() -> str:
        return f"; partial file kept at {part} for a later resume" if part.exists() else ""

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            watch.check_deadline(part.stat().st_size if part.exists() else 0)
            if _transfer(url, part, limits.timeout, watch):
                break
            actual = file_digest(part, algorithm=algorithm)
            if actual == expected:
                break
            raise _Interrupted(
                f"the server gave no length, and the {part.stat().st_size} bytes received do "
                f"not match the {algorithm} (yet)"
            )
        except _OutOfTime as exc:
            raise DownloadError(f"{url}: {exc}{kept()}") from exc
        except _Interrupted as exc:
            if attempt == _ATTEMPTS:
                raise DownloadError(
                    f"{url}: transfer failed after {_ATTEMPTS} attempts ({exc}){kept()}"
                ) from exc
            logger.warning("%s: attempt %d/%d failed (%s), retrying", url, attempt, _ATTEMPTS, exc)
            actual = None
            time.sleep(_RETRY_DELAY_S * attempt)
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise DownloadError(
            f"{url}: size mismatch: expected {size} bytes, got {actual_size} (file deleted)"
        )
    actual = actual or file_digest(part, algorithm=algorithm)
    if actual != expected:
        part.unlink()
        raise DownloadError(
            f"{url}: {algorithm} mismatch: expected {expected}, got {actual} (file deleted)"
        )
    os.replace(part, dest)
    logger.info("%s: downloaded and verified (%s)", dest, _mib(actual_size))
    return dest


def read_checksums(path: Path) -> dict[str, str]:
    """Read a ``sha256sum``/``md5sum`` file (``<hex>  <name>`` or ``<hex> *<name>``) as {name: hex}.

    Blank lines and ``#`` comments are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SrbenchError(f"{path}: cannot read checksum file ({exc})") from exc
    checksums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _CHECKSUM_LINE.fullmatch(line)
        if match is None:
            raise SrbenchError(
                f"{path}:{number}: malformed line {line!r} "
                "(expected '<md5 or sha256 hex>  <name>' or '<hex> *<name>')"
            )
        name, checksum = match.group(2), match.group(1).lower()
        if checksums.get(name, checksum) != checksum:
            raise SrbenchError(f"{path}:{number}: second, different checksum for {name}")
        checksums[name] = checksum
    return checksums
