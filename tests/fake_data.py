"""Test infrastructure shared by test modules: a real local HTTP server and fake data sets.

The fake DIV2K and EDSR benchmark archives are real zip/tar files of real (random) PNG images,
laid out like the published ones, so that srbench.download runs unchanged against them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from srbench.download.catalogue import Archive

# Two images per set, named like the real ones; HR sides are multiples of 12 (= lcm of 2, 3, 4).
BENCHMARK_IMAGES = {
    "Set5": ("baby", "bird"),
    "Set14": ("baboon", "barbara"),
    "B100": ("3096", "8023"),
    "Urban100": ("img_001", "img_002"),
}
BENCHMARK_SIDES = {"Set5": 48, "Set14": 48, "B100": 48, "Urban100": 96}


# --- local HTTP server ---------------------------------------------------------------------


@dataclass
class ServerState:
    """What the test server serves and what it has seen."""

    root: Path
    url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    cut_after: dict[str, list[int]] = field(default_factory=dict)  # name -> bytes sent per request
    trickle: dict[str, float] = field(default_factory=dict)  # name -> seconds between single bytes
    ignore_range: bool = False
    no_length: bool = False  # send no Content-Length: the body ends when the connection closes
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)

    def names(self) -> list[str]:
        return [name for name, _ in self.requests]


class RangeHandler(BaseHTTPRequestHandler):
    """Serves files of ``state.root`` with Range support; can cut transfers short, trickle them
    one byte at a time, or leave out Content-Length."""

    server: ThreadingHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        name = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append((name, range_header))
            cuts = state.cut_after.get(name)
            cut = cuts.pop(0) if cuts else None
            pause = state.trickle.get(name)
        path = state.root / name
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = data[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        if not state.no_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if pause is not None:
            self._trickle(body, pause, state.stopped)
            return
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def _trickle(self, body: bytes, pause: float, stopped: threading.Event) -> None:
        """Send ``body`` one byte every ``pause`` seconds, until the client or the server stops."""
        self.close_connection = True
        for index in range(len(body)):
            if stopped.wait(pause):
                return
            try:
                self.wfile.write(body[index : index + 1])
            except (BrokenPipeError, ConnectionResetError):
                return

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Keep the test output quiet."""


@contextlib.contextmanager
def serve(root: Path) -> Iterator[ServerState]:
    """Serve the files of ``root`` on 127.0.0.1 (free port) until the block ends."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    state = ServerState(root=Path(root), url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state.stopped.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# --- archives and images -------------------------------------------------------------------


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file ("md5" or "sha256")."""
    return hashlib.new(algorithm, Path(path).read_bytes()).hexdigest()


def png_bytes(rng: np.random.Generator, side: int) -> bytes:
    """A random ``side`` x ``side`` RGB image, PNG-encoded."""
    buffer = io.BytesIO()
    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    """Write a zip archive of ``entries`` ({name: content}; a name ending in / is a folder)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name), content)
    return path


def make_fake_div2k(
    root: Path,
    scale: int = 2,
    n_train: int = 3,
    n_valid: int = 2,
    side: int = 96,
    drop_lr: str | None = None,
) -> dict[str, Archive]:
    """Write DIV2K-like HR and bicubic x``scale`` LR zips into ``root``; return their table.

    Train images are numbered from 0001, valid ones from 0801 (as in DIV2K); HR images are
    ``side`` px square, LR ones ``side // scale``. ``drop_lr`` (e.g. "0002") leaves out that
    image's LR partner. The table holds each zip's SHA-256 and size.
    """
    rng = np.random.default_rng(1)
    ids = {
        "train": [f"{i:04d}" for i in range(1, n_train + 1)],
        "valid": [f"{i:04d}" for i in range(801, 801 + n_valid)],
    }
    archives: dict[str, Archive] = {}
    for split, names in ids.items():
        hr = {f"DIV2K_{split}_HR/{n}.png": png_bytes(rng, side) for n in names}
        lr = {
            f"DIV2K_{split}_LR_bicubic/X{scale}/{n}x{scale}.png": png_bytes(rng, side // scale)
            for n in names
            if n != drop_lr
        }
        zips = {f"DIV2K_{split}_HR.zip": hr, f"DIV2K_{split}_LR_bicubic_X{scale}.zip": lr}
        for name, entries in zips.items():
            path = make_zip(Path(root) / name, entries)
            archives[name] = Archive(name, file_digest(path, "sha256"), path.stat().st_size)
    return archives


def _add_to_tar(tf: tarfile.TarFile, name: str, content: bytes | None = None) -> None:
    """Add a folder (``content`` None) or a file, with fixed metadata so the tar is reproducible."""
    info = tarfile.TarInfo(name)
    info.mtime = 1_500_000_000
    if content is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(info)
    else:
        info.size, info.mode = len(content), 0o644
        tf.addfile(info, io.BytesIO(content))


def make_fake_benchmark(
    root: Path, scales: Iterable[int] = (2, 3, 4), sizes: dict[str, int] | None = None
) -> Archive:
    """Write ``root/benchmark.tar`` laid out like EDSR's (all four sets); return its MD5 entry.

    Each set holds two images, ``benchmark/<Set>/HR/<name>.png`` and, per scale,
    ``benchmark/<Set>/LR_bicubic/X<s>/<name>x<s>.png`` of HR side // s. ``sizes`` maps a set to
    its HR side in px (defaults: :data:`BENCHMARK_SIDES`).
    """
    sides = {**BENCHMARK_SIDES, **(sizes or {})}
    rng = np.random.default_rng(2)
    path = Path(root) / "benchmark.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        _add_to_tar(tf, "benchmark")
        for set_name, names in BENCHMARK_IMAGES.items():
            base = f"benchmark/{set_name}"
            for folder in (base, f"{base}/HR", f"{base}/LR_bicubic"):
                _add_to_tar(tf, folder)
            for name in names:
                _add_to_tar(tf, f"{base}/HR/{name}.png", png_bytes(rng, sides[set_name]))
            for s in scales:
                _add_to_tar(tf, f"{base}/LR_bicubic/X{s}")
                for name in names:
                    lr = png_bytes(rng, sides[set_name] // s)
                    _add_to_tar(tf, f"{base}/LR_bicubic/X{s}/{name}x{s}.png", lr)
    return Archive(path.name, file_digest(path, "md5"), None)


def write_checksums(path: Path, archives: Iterable[Archive]) -> Path:
    """Write a ``sha256sum``-style file (``<hex>  <name>`` per line) for ``archives``."""
    path = Path(path)
    path.write_text("".join(f"{a.checksum}  {a.name}\n" for a in archives), encoding="utf-8")
    return path
