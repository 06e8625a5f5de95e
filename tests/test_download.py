"""Tests of srbench.download (transfer, archives, catalogue, local) and the `srbench download`
stage against a real local HTTP server and real archives."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from fake_data import (
    BENCHMARK_IMAGES,
    ServerState,
    file_digest,
    make_fake_benchmark,
    make_fake_div2k,
    make_zip,
    png_bytes,
    serve,
    write_checksums,
)
from local_server import free_port
from PIL import Image

from pipeline.download import download as download_stage
from pipeline.outputs import OutputError
from pipeline.process import WorkspaceBusy, workspace_lock
from srbench.download import transfer
from srbench.download.archives import safe_extract
from srbench.download.catalogue import (
    BENCHMARK_ARCHIVES,
    DIV2K_ARCHIVES,
    Archive,
    download_benchmark,
    download_div2k,
    with_checksums,
)
from srbench.download.local import SAMPLE_IMAGES, export_samples, import_folder
from srbench.download.transfer import TransferLimits, fetch, read_checksums
from srbench.errors import DownloadError, InvalidImageError, SrbenchError, UnsafeArchiveError
from srbench.names import BENCHMARK_SETS


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerState]:
    root = tmp_path / "www"
    root.mkdir()
    with serve(root) as state:
        yield state


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "_RETRY_DELAY_S", 0.0)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve_file(state: ServerState, name: str, data: bytes) -> str:
    (state.root / name).write_bytes(data)
    return f"{state.url}/{name}"


PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


# --- fetch ---------------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_caches(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    dest = tmp_path / "cache" / "blob.bin"
    assert fetch(url, dest, sha256_of(PAYLOAD), size=len(PAYLOAD)) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("blob.bin.part").exists()
    assert fetch(url, dest, sha256_of(PAYLOAD)) == dest
    assert server.requests == [("blob.bin", None)]


def test_fetch_logs_its_progress_in_mib_with_the_rate(
    server: ServerState, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRBENCH_PROGRESS", "lines")
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.cut_after["blob.bin"] = [100_000]
    with caplog.at_level("INFO", logger="srbench.download"):
        fetch(url, tmp_path / "blob.bin", sha256_of(PAYLOAD), size=len(PAYLOAD))
    lines = [message for message in caplog.messages if message.startswith("download blob.bin: ")]
    assert lines[0].startswith("download blob.bin: 0.0/0.3 MiB (0%, ")  # the first attempt, cut at 100,000 bytes
    assert lines[-2].startswith("download blob.bin: 0.1/0.3 MiB (33%, ")  # the resumed attempt starts where it was cut
    assert lines[-1].startswith("download blob.bin: 0.3/0.3 MiB (100%, ") and "MiB/s, eta 0m00s)" in lines[-1]


def test_fetch_redownloads_cached_file_with_wrong_checksum(
    server: ServerState, tmp_path: Path
) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"stale content")
    fetch(url, dest, sha256_of(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.names() == ["blob.bin"]


def test_fetch_resumes_interrupted_transfer(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.cut_after["blob.bin"] = [100_000]
    dest = tmp_path / "blob.bin"
    fetch(url, dest, sha256_of(PAYLOAD), size=len(PAYLOAD))
    assert server.requests == [("blob.bin", None), ("blob.bin", "bytes=100000-")]
    assert sha256_of(dest.read_bytes()) == sha256_of(PAYLOAD)
    assert not dest.with_name("blob.bin.part").exists()


def test_fetch_gives_up_after_three_attempts_and_keeps_part(
    server: ServerState, tmp_path: Path
) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.cut_after["blob.bin"] = [1000, 1000, 1000]
    dest = tmp_path / "blob.bin"
    part = tmp_path / "blob.bin.part"
    with pytest.raises(DownloadError, match=re.escape(url)):
        fetch(url, dest, sha256_of(PAYLOAD))
    assert len(server.requests) == 3
    assert part.stat().st_size == 3000
    assert not dest.exists()
    fetch(url, dest, sha256_of(PAYLOAD))
    assert server.requests[-1] == ("blob.bin", "bytes=3000-")
    assert dest.read_bytes() == PAYLOAD


def test_fetch_part_already_complete_gets_416(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD)
    fetch(url, dest, sha256_of(PAYLOAD))
    assert server.requests == [("blob.bin", f"bytes={len(PAYLOAD)}-")]
    assert dest.read_bytes() == PAYLOAD


def test_fetch_starts_over_when_server_ignores_range(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.ignore_range = True
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that is not a prefix")
    fetch(url, dest, sha256_of(PAYLOAD))
    assert server.requests[0][1] is not None
    assert dest.read_bytes() == PAYLOAD


def test_fetch_sha256_mismatch_deletes_file(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="sha256") as info:
        fetch(url, dest, "0" * 64)
    assert url in str(info.value)
    assert sha256_of(PAYLOAD) in str(info.value)
    assert not dest.exists()
    assert not (tmp_path / "blob.bin.part").exists()


def test_fetch_size_mismatch_deletes_file(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    with pytest.raises(DownloadError, match="size"):
        fetch(url, tmp_path / "blob.bin", sha256_of(PAYLOAD), size=len(PAYLOAD) + 1)
    assert list(tmp_path.glob("blob.bin*")) == []


def test_fetch_404(server: ServerState, tmp_path: Path) -> None:
    url = f"{server.url}/missing.zip"
    with pytest.raises(DownloadError, match="404") as info:
        fetch(url, tmp_path / "missing.zip", "0" * 64)
    assert url in str(info.value)
    assert len(server.requests) == 1  # an HTTP error is not retried


def test_fetch_md5_checksum(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    dest = tmp_path / "blob.bin"
    md5 = hashlib.md5(PAYLOAD).hexdigest().upper()  # hex digits in either case
    assert fetch(url, dest, md5) == dest
    assert fetch(url, dest, md5) == dest
    assert server.requests == [("blob.bin", None)]
    with pytest.raises(DownloadError, match="md5 mismatch"):
        fetch(url, tmp_path / "other.bin", "f" * 32)
    assert list(tmp_path.glob("other.bin*")) == []


@pytest.mark.parametrize("checksum", ["", "abc", "a" * 40, "g" * 64, "0" * 63])
def test_checksum_neither_md5_nor_sha256(
    server: ServerState, tmp_path: Path, checksum: str
) -> None:
    with pytest.raises(SrbenchError, match="pack.zip: checksum .* neither an MD5"):
        Archive("pack.zip", checksum, None)
    with pytest.raises(SrbenchError, match="blob.bin: checksum .* neither an MD5"):
        fetch(serve_file(server, "blob.bin", PAYLOAD), tmp_path / "blob.bin", checksum)
    assert server.requests == []


def test_fetch_unreachable_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/blob.bin"  # nothing listens there
    with pytest.raises(DownloadError, match=re.escape(url)) as info:
        fetch(url, tmp_path / "blob.bin", "0" * 64, limits=TransferLimits(timeout=5))
    assert "3 attempts" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_fetch_drops_a_trickle_and_keeps_the_part(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.trickle["blob.bin"] = 0.02  # one byte every 20 ms, forever within a per-read timeout
    dest, part = tmp_path / "blob.bin", tmp_path / "blob.bin.part"
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, sha256_of(PAYLOAD), limits=TransferLimits(min_rate=1000, window=0.3))
    assert time.monotonic() - started < 10  # three attempts of about one window each, no hang
    message = str(info.value)
    assert message.startswith(f"{url}: transfer failed after 3 attempts (too slow: ")
    assert re.search(r"too slow: \d+ bytes in the last 0\.\d s", message)
    assert str(part) in message and "\n" not in message
    assert len(server.requests) == 3
    received = part.stat().st_size
    assert 0 < received < 1000
    assert not dest.exists()
    del server.trickle["blob.bin"]
    fetch(url, dest, sha256_of(PAYLOAD))
    assert server.requests[-1] == ("blob.bin", f"bytes={received}-")
    assert dest.read_bytes() == PAYLOAD


def test_fetch_deadline_ends_a_slow_download_without_retry(
    server: ServerState, tmp_path: Path
) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.trickle["blob.bin"] = 0.02
    dest, part = tmp_path / "blob.bin", tmp_path / "blob.bin.part"
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, sha256_of(PAYLOAD), limits=TransferLimits(min_rate=0, deadline=0.4))
    message = str(info.value)
    assert re.fullmatch(
        re.escape(url) + r": not complete after \d+\.\d s \(deadline 0\.4 s\), \d+ bytes received; "
        + re.escape(f"partial file kept at {part} for a later resume"),
        message,
    ), message
    assert len(server.requests) == 1
    assert part.stat().st_size > 0 and not dest.exists()


def test_fetch_resumes_without_content_length(server: ServerState, tmp_path: Path) -> None:
    archive = make_fake_benchmark(server.root)  # a real tar of PNG images
    served = (server.root / "benchmark.tar").read_bytes()
    url, cut = f"{server.url}/benchmark.tar", len(served) // 4
    server.no_length = True
    server.cut_after["benchmark.tar"] = [cut, cut, cut]
    dest, part = tmp_path / "benchmark.tar", tmp_path / "benchmark.tar.part"
    with pytest.raises(DownloadError, match="3 attempts.*partial file kept"):
        fetch(url, dest, archive.checksum)
    assert part.read_bytes() == served[: 3 * cut]
    fetch(url, dest, archive.checksum)  # the next run resumes
    assert dest.read_bytes() == served
    ranges = [byte_range for _, byte_range in server.requests]
    assert ranges == [None, f"bytes={cut}-", f"bytes={2 * cut}-", f"bytes={3 * cut}-"]


def test_fetch_without_content_length_restarts_on_a_200(
    server: ServerState, tmp_path: Path
) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.no_length, server.ignore_range = True, True
    server.cut_after["blob.bin"] = [1000]
    dest = tmp_path / "blob.bin"
    fetch(url, dest, sha256_of(PAYLOAD))
    assert server.requests == [("blob.bin", None), ("blob.bin", "bytes=1000-")]
    assert dest.read_bytes() == PAYLOAD


def test_fetch_without_content_length_wrong_checksum(server: ServerState, tmp_path: Path) -> None:
    url = serve_file(server, "blob.bin", PAYLOAD)
    server.no_length = True
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(url, tmp_path / "blob.bin", "0" * 64)
    # the checksum did not match what arrived: asking past its end tells that it was all there
    assert server.requests == [("blob.bin", None), ("blob.bin", f"bytes={len(PAYLOAD)}-")]
    assert list(tmp_path.glob("blob.bin*")) == []


def test_fetch_bad_url(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=re.escape("example.org/blob.bin: unknown url type")):
        fetch("example.org/blob.bin", tmp_path / "blob.bin", "0" * 64)


# --- safe_extract --------------------------------------------------------------------------


def add_tar_entry(
    tf: tarfile.TarFile, name: str, content: bytes = b"", kind: bytes = tarfile.REGTYPE
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind == tarfile.REGTYPE:
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    else:
        info.linkname = "/etc/passwd"
        tf.addfile(info)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_safe_extract_zip_and_tar(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ok.zip", {"top/": b"", "top/a.txt": b"A", "top/sub/b.txt": b"B"})
    target = tmp_path / "out_zip"
    assert sorted(safe_extract(archive, target)) == [target / "top/a.txt", target / "top/sub/b.txt"]
    assert (target / "top/sub/b.txt").read_bytes() == b"B"

    tar_path = tmp_path / "ok.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tf:
        add_tar_entry(tf, "dir/c.txt", b"C")
    target = tmp_path / "out_tar"
    assert safe_extract(tar_path, target) == [target / "dir/c.txt"]
    assert (target / "dir/c.txt").read_bytes() == b"C"


@pytest.mark.parametrize("bad_name", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_safe_extract_rejects_unsafe_zip(tmp_path: Path, bad_name: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {"good.png": b"ok", bad_name: b"evil"})
    target = tmp_path / "sub" / "target"
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, target)
    assert str(archive) in str(info.value) and bad_name in str(info.value)
    assert files_under(tmp_path / "sub") == []
    assert list(tmp_path.rglob("evil.png")) == []


@pytest.mark.parametrize(
    ("bad_name", "kind"),
    [
        ("/tmp/evil.txt", tarfile.REGTYPE),
        ("../evil.txt", tarfile.REGTYPE),
        ("link", tarfile.SYMTYPE),
        ("hard", tarfile.LNKTYPE),
        ("dev", tarfile.CHRTYPE),
    ],
)
def test_safe_extract_rejects_unsafe_tar(tmp_path: Path, bad_name: str, kind: bytes) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        add_tar_entry(tf, "good.txt", b"ok")
        add_tar_entry(tf, bad_name, b"evil", kind)
    target = tmp_path / "sub" / "target"
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, target)
    assert str(archive) in str(info.value) and bad_name in str(info.value)
    assert files_under(tmp_path / "sub") == []
    assert list(tmp_path.rglob("evil.txt")) == []


def test_safe_extract_rejects_non_archive(tmp_path: Path) -> None:
    path = tmp_path / "plain.zip"
    path.write_bytes(b"not an archive at all" * 50)
    with pytest.raises(DownloadError, match="plain.zip: damaged archive .*; delete it"):
        safe_extract(path, tmp_path / "target")


def png_entries(folder: str, count: int) -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    return {f"{folder}/{i:04d}.png": png_bytes(rng, 24) for i in range(1, count + 1)}


def flip_byte(path: Path, index: int) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def damaged_archive(tmp_path: Path, damage: str) -> Path:
    """A real archive of PNG images, damaged after writing."""
    entries = png_entries("images", 3)
    if damage == "bad_crc_zip":
        path = make_zip(tmp_path / "images.zip", entries)
        flip_byte(path, path.read_bytes().index(entries["images/0002.png"]) + 200)
    elif damage == "truncated_zip":
        path = make_zip(tmp_path / "images.zip", entries)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    else:
        path = tmp_path / "images.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            for name, content in entries.items():
                add_tar_entry(tf, name, content)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    return path


@pytest.mark.parametrize("damage", ["bad_crc_zip", "truncated_zip", "truncated_tar_gz"])
def test_safe_extract_damaged_archive(tmp_path: Path, damage: str) -> None:
    archive = damaged_archive(tmp_path, damage)
    with pytest.raises(DownloadError) as info:
        safe_extract(archive, tmp_path / "target")
    message = str(info.value)
    assert message.startswith(f"{archive}: damaged archive (")
    assert message.endswith("; delete it so that it is downloaded again")
    assert "\n" not in message
    assert archive.exists()  # left for the user: the same source would give the same bytes


def test_safe_extract_full_disk_names_the_file(tmp_path: Path, full_disk: Path) -> None:
    archive = make_zip(tmp_path / "images.zip", png_entries("images", 2))
    with pytest.raises(OSError) as info:
        safe_extract(archive, full_disk)
    assert info.value.strerror == "No space left on device"
    assert info.value.filename == str(full_disk / "images" / "0001.png")


# --- download_div2k ------------------------------------------------------------------------


def relative_files(path: Path) -> list[str]:
    return [p.relative_to(path).as_posix() for p in files_under(path)]


def test_download_div2k_layout_and_cache(server: ServerState, tmp_path: Path) -> None:
    archives = make_fake_div2k(server.root, n_train=2, n_valid=1, side=24)
    out_dir, cache_dir = tmp_path / "data" / "raw", tmp_path / "cache"
    download_div2k(out_dir, 2, cache_dir, mirror=server.url + "/", archives=archives)
    assert relative_files(out_dir) == [
        "train/HR/0001.png",
        "train/HR/0002.png",
        "train/LR_bicubic/X2/0001.png",
        "train/LR_bicubic/X2/0002.png",
        "valid/HR/0801.png",
        "valid/LR_bicubic/X2/0801.png",
    ]
    with Image.open(out_dir / "train/LR_bicubic/X2/0001.png") as lr:
        assert lr.size == (12, 12)
    assert len(server.requests) == 4
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(archives)  # temp dir removed
    assert [p.name for p in out_dir.parent.iterdir()] == ["raw"]  # no staging dirs left

    download_div2k(out_dir, 2, cache_dir, mirror=server.url, archives=archives, limit=1)
    assert len(server.requests) == 4  # served from the cache
    assert relative_files(out_dir) == [
        "train/HR/0001.png",
        "train/LR_bicubic/X2/0001.png",
        "valid/HR/0801.png",
        "valid/LR_bicubic/X2/0801.png",
    ]


def test_download_div2k_unknown_scale(tmp_path: Path) -> None:
    with pytest.raises(SrbenchError, match=r"scale 5: no DIV2K bicubic LR archive \(known scales: \[2, 3, 4\]\)"):
        download_div2k(tmp_path / "raw", 5, tmp_path / "cache", mirror="http://127.0.0.1:9")
    assert not (tmp_path / "raw").exists()


def test_download_div2k_missing_lr_partner(server: ServerState, tmp_path: Path) -> None:
    archives = make_fake_div2k(server.root, n_train=2, n_valid=1, side=24, drop_lr="0002")
    out_dir = tmp_path / "raw"
    with pytest.raises(SrbenchError, match="0002"):
        download_div2k(out_dir, 2, tmp_path / "cache", mirror=server.url, archives=archives)
    assert list(tmp_path.glob("*raw*")) == []


def test_download_div2k_zip_with_bad_crc(server: ServerState, tmp_path: Path) -> None:
    make_fake_div2k(server.root, n_train=2, n_valid=1, side=24)
    damaged = server.root / "DIV2K_train_HR.zip"
    flip_byte(damaged, damaged.stat().st_size // 3)  # inside the first PNG's stored bytes
    sums = write_checksums(  # a mirror's checksum list, made from the damaged file
        tmp_path / "SHA256SUMS",
        [Archive(p.name, file_digest(p, "sha256"), None) for p in server.root.iterdir()],
    )
    archives = with_checksums(DIV2K_ARCHIVES, read_checksums(sums))
    out_dir, cache_dir = tmp_path / "data" / "raw", tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        download_div2k(out_dir, 2, cache_dir, mirror=server.url, archives=archives)
    assert str(info.value).startswith(f"{cache_dir / 'DIV2K_train_HR.zip'}: damaged archive (Bad CRC-32")
    assert "delete it" in str(info.value)
    assert list(out_dir.parent.iterdir()) == []  # no output, no staging folder
    assert (cache_dir / "DIV2K_train_HR.zip").exists()


def test_div2k_archive_table() -> None:
    assert DIV2K_ARCHIVES["DIV2K_train_HR.zip"].size == 3530603713
    lr_names = {f"DIV2K_{s}_LR_bicubic_X{x}.zip" for s in ("train", "valid") for x in (2, 3, 4)}
    assert lr_names < set(DIV2K_ARCHIVES)
    assert all(re.fullmatch(r"[0-9a-f]{64}", a.checksum) for a in DIV2K_ARCHIVES.values())


def test_download_div2k_with_checksum_file(server: ServerState, tmp_path: Path) -> None:
    published = make_fake_div2k(server.root)  # 3 train, 2 valid images of 96 px
    sums = write_checksums(tmp_path / "SHA256SUMS", published.values())
    archives = with_checksums(DIV2K_ARCHIVES, read_checksums(sums))
    out_dir = tmp_path / "raw"
    download_div2k(out_dir, 2, tmp_path / "cache", mirror=server.url, archives=archives)
    ids = {"train": ["0001", "0002", "0003"], "valid": ["0801", "0802"]}
    assert relative_files(out_dir) == [
        f"{split}/{folder}/{name}.png"
        for split, names in ids.items()
        for folder in ("HR", "LR_bicubic/X2")
        for name in names
    ]
    with Image.open(out_dir / "valid/LR_bicubic/X2/0802.png") as lr:
        assert lr.size == (48, 48)


# --- checksum files ------------------------------------------------------------------------


def test_read_checksums(tmp_path: Path) -> None:
    sha, md5 = "ab" * 32, "CD" * 16
    path = tmp_path / "SUMS"
    path.write_text(
        f"# published by a mirror\n\n{sha}  DIV2K_train_HR.zip\n  \n{md5} *benchmark.tar\r\n"
        f"{sha}  name with spaces.zip\n"
    )
    assert read_checksums(path) == {
        "DIV2K_train_HR.zip": sha,
        "benchmark.tar": md5.lower(),
        "name with spaces.zip": sha,
    }
    assert read_checksums(write_checksums(tmp_path / "again", [Archive("a.zip", md5, 3)])) == {
        "a.zip": md5.lower()
    }


@pytest.mark.parametrize(
    "bad_line",
    [
        "abc  short.zip",
        f"{'a' * 40}  sha1.zip",
        f"{'a' * 64}",
        f"{'a' * 64} one-space.zip",
        f"{'a' * 64}\ttab.zip",
        f"{'z' * 64}  not-hex.zip",
    ],
)
def test_read_checksums_malformed_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "SUMS"
    path.write_text(f"# header\n{'0' * 64}  ok.zip\n{bad_line}\n")
    with pytest.raises(SrbenchError, match=re.escape(f"{path}:3: malformed line")):
        read_checksums(path)


def test_read_checksums_conflicting_lines(tmp_path: Path) -> None:
    path = tmp_path / "SUMS"
    path.write_text(f"{'0' * 64}  a.zip\n{'0' * 64}  a.zip\n{'1' * 64}  a.zip\n")
    with pytest.raises(SrbenchError, match=re.escape(f"{path}:3:") + ".*a.zip"):
        read_checksums(path)


def test_read_checksums_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "SHA256SUMS"
    with pytest.raises(SrbenchError, match=re.escape(str(path))):
        read_checksums(path)


def test_with_checksums() -> None:
    hr, new = "1" * 64, "2" * 32
    merged = with_checksums(DIV2K_ARCHIVES, {"DIV2K_train_HR.zip": hr, "extra.tar": new})
    assert merged["DIV2K_train_HR.zip"] == Archive("DIV2K_train_HR.zip", hr, None)
    assert merged["extra.tar"] == Archive("extra.tar", new, None)
    assert merged["DIV2K_valid_HR.zip"] is DIV2K_ARCHIVES["DIV2K_valid_HR.zip"]
    assert set(merged) == set(DIV2K_ARCHIVES) | {"extra.tar"}
    assert DIV2K_ARCHIVES["DIV2K_train_HR.zip"].size == 3530603713  # the original is untouched
    with pytest.raises(SrbenchError, match="bad.zip"):
        with_checksums(DIV2K_ARCHIVES, {"bad.zip": "xyz"})


# --- download_benchmark --------------------------------------------------------------------


def test_download_benchmark_layout_and_cache(
    server: ServerState, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archives = {"benchmark.tar": make_fake_benchmark(server.root)}
    out_dir, cache_dir = tmp_path / "data" / "benchmark", tmp_path / "cache"
    with caplog.at_level("INFO", logger="srbench.download"):
        download_benchmark(
            out_dir, ["Set5", "Urban100"], 4, cache_dir, mirror=server.url + "/", archives=archives
        )
    assert relative_files(out_dir) == [
        "Set5/HR/baby.png",
        "Set5/HR/bird.png",
        "Set5/LR_bicubic/X4/baby.png",
        "Set5/LR_bicubic/X4/bird.png",
        "Urban100/HR/img_001.png",
        "Urban100/HR/img_002.png",
        "Urban100/LR_bicubic/X4/img_001.png",
        "Urban100/LR_bicubic/X4/img_002.png",
    ]
    for hr_path in out_dir.glob("*/HR/*.png"):
        lr_path = hr_path.parent.parent / "LR_bicubic" / "X4" / hr_path.name
        with Image.open(hr_path) as hr, Image.open(lr_path) as lr:
            assert lr.size == (hr.width // 4, hr.height // 4)
    with Image.open(out_dir / "Urban100/HR/img_001.png") as hr:
        assert hr.size == (96, 96)
    assert "benchmark Set5: 2 HR/LR pairs (x4)" in caplog.messages
    assert "benchmark Urban100: 2 HR/LR pairs (x4)" in caplog.messages
    assert server.requests == [("benchmark.tar", None)]
    assert [p.name for p in cache_dir.iterdir()] == ["benchmark.tar"]  # temp dir removed
    assert [p.name for p in out_dir.parent.iterdir()] == ["benchmark"]  # no staging dirs left

    download_benchmark(out_dir, "Set14", 2, cache_dir, mirror=server.url, archives=archives)
    assert len(server.requests) == 1  # served from the cache
    assert relative_files(out_dir) == [
        "Set14/HR/baboon.png",
        "Set14/HR/barbara.png",
        "Set14/LR_bicubic/X2/baboon.png",
        "Set14/LR_bicubic/X2/barbara.png",
    ]


def test_download_benchmark_md5_mismatch(server: ServerState, tmp_path: Path) -> None:
    make_fake_benchmark(server.root)
    archives = {"benchmark.tar": Archive("benchmark.tar", "0" * 32, None)}
    out_dir, cache_dir = tmp_path / "benchmark", tmp_path / "cache"
    with pytest.raises(DownloadError, match="md5 mismatch") as info:
        download_benchmark(out_dir, ["Set5"], 2, cache_dir, mirror=server.url, archives=archives)
    assert file_digest(server.root / "benchmark.tar", "md5") in str(info.value)
    assert list(cache_dir.iterdir()) == []
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("sets", "scale", "message"),
    [
        (["Set5", "Set6"], 4, "'Set6': unknown (choices: Set5, Set14, B100, Urban100)"),
        (["set5"], 2, "'set5': unknown"),
        ([], 2, "no benchmark set given (choices: Set5, Set14, B100, Urban100)"),
        (["Set5"], 8, "scale 8: the benchmark sets have bicubic LR images for x2, x3, x4 only"),
    ],
)
def test_download_benchmark_bad_arguments(
    server: ServerState, tmp_path: Path, sets: list[str], scale: int, message: str
) -> None:
    archives = {"benchmark.tar": make_fake_benchmark(server.root)}
    with pytest.raises(SrbenchError, match=re.escape(message)):
        download_benchmark(
            tmp_path / "out", sets, scale, tmp_path / "cache", mirror=server.url, archives=archives
        )
    assert server.requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["www"]


def test_download_benchmark_without_checksum(server: ServerState, tmp_path: Path) -> None:
    make_fake_benchmark(server.root)
    with pytest.raises(SrbenchError, match="no checksum known for benchmark.tar"):
        download_benchmark(
            tmp_path / "out", ["Set5"], 2, tmp_path / "cache", server.url, DIV2K_ARCHIVES
        )
    assert server.requests == []


def test_download_benchmark_missing_lr_partner(server: ServerState, tmp_path: Path) -> None:
    archives = {"benchmark.tar": make_fake_benchmark(server.root, scales=(2, 3))}
    out_dir = tmp_path / "out"
    message = "baby.png: no LR partner babyx4.png for benchmark Set5 x4"
    with pytest.raises(SrbenchError, match=re.escape(message)):
        download_benchmark(
            out_dir, ["Set5"], 4, tmp_path / "cache", mirror=server.url, archives=archives
        )
    assert not out_dir.exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["benchmark.tar"]


def serve_tar(state: ServerState, entries: dict[str, bytes]) -> dict[str, Archive]:
    path = state.root / "benchmark.tar"
    with tarfile.open(path, "w") as tf:
        for name, content in entries.items():
            add_tar_entry(tf, name, content)
    return {"benchmark.tar": Archive("benchmark.tar", file_digest(path, "md5"), None)}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({}, "benchmark set Set14: not found in "),
        ({"Set14/HR/baboon.png": b"png"}, "benchmark set Set14: not found in "),
        (
            {"benchmark/Set14/LR_bicubic/X2/baboonx2.png": b"png"},
            "/benchmark/Set14/HR: no HR PNG images for benchmark Set14",
        ),
    ],
)
def test_download_benchmark_incomplete_archive(
    server: ServerState, tmp_path: Path, entries: dict[str, bytes], message: str
) -> None:
    set5 = {"benchmark/Set5/HR/baby.png": b"png", "benchmark/Set5/LR_bicubic/X2/babyx2.png": b"png"}
    archives = serve_tar(server, {**set5, **entries})
    out_dir = tmp_path / "out"
    with pytest.raises(SrbenchError, match=re.escape(message)):
        download_benchmark(
            out_dir, ["Set5", "Set14"], 2, tmp_path / "cache", mirror=server.url, archives=archives
        )
    assert not out_dir.exists()


def test_benchmark_tables() -> None:
    assert BENCHMARK_SETS == ("Set5", "Set14", "B100", "Urban100")
    assert set(BENCHMARK_IMAGES) == set(BENCHMARK_SETS)  # the fake covers every set
    archive = BENCHMARK_ARCHIVES["benchmark.tar"]
    assert archive == Archive("benchmark.tar", "4ace41d33c2384b97e6b320cd0afd6ba", None)


# --- export_samples / import_folder --------------------------------------------------------


def split_names(out_dir: Path) -> dict[str, list[str]]:
    return {s: sorted(p.stem for p in (out_dir / s / "HR").iterdir()) for s in ("train", "valid")}


def test_export_samples(tmp_path: Path) -> None:
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    export_samples(out_a, n_valid=2, seed=7, max_side=40)
    export_samples(out_b, n_valid=2, seed=7, max_side=40)
    names = split_names(out_a)
    assert len(names["valid"]) == 2
    assert len(names["train"]) == len(SAMPLE_IMAGES) - 2
    assert names == split_names(out_b)
    assert set(names["train"]) | set(names["valid"]) == set(SAMPLE_IMAGES)
    for path in files_under(out_a):
        with Image.open(path) as image:
            assert image.mode == "RGB"
            assert max(image.size) <= 40
    chelsea_a, chelsea_b = next(out_a.rglob("chelsea.png")), next(out_b.rglob("chelsea.png"))
    with Image.open(chelsea_a) as image, Image.open(chelsea_b) as other:
        assert image.size == (40, 40)
        assert np.array_equal(np.asarray(image), np.asarray(other))


def test_export_samples_center_crop_and_no_crop(tmp_path: Path) -> None:
    from skimage import data

    export_samples(tmp_path / "full", n_valid=1, seed=0, max_side=None)
    full = next((tmp_path / "full").rglob("chelsea.png"))
    with Image.open(full) as image:
        assert np.array_equal(np.asarray(image), data.chelsea())
    export_samples(tmp_path / "crop", n_valid=1, seed=0, max_side=100)
    crop = next((tmp_path / "crop").rglob("chelsea.png"))
    with Image.open(crop) as image:  # chelsea is 300x451: centre 100x100 crop
        assert np.array_equal(np.asarray(image), data.chelsea()[100:200, 175:275])


@pytest.mark.parametrize("n_valid", [0, len(SAMPLE_IMAGES)])
def test_export_samples_bad_n_valid(tmp_path: Path, n_valid: int) -> None:
    with pytest.raises(SrbenchError, match=f"n_valid={n_valid}"):
        export_samples(tmp_path / "raw", n_valid=n_valid, seed=0, max_side=16)
    assert not (tmp_path / "raw").exists()


def write_image(path: Path, mode: str, size: tuple[int, int]) -> None:
    Image.new(mode, size, color=(10, 20, 30, 0) if mode == "RGBA" else 128).save(path)


def test_import_folder(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", "RGBA", (50, 30))
    write_image(folder / "b.JPG", "L", (20, 20))
    write_image(folder / "c.jpeg", "L", (20, 20))
    (folder / "notes.txt").write_text("not an image")
    (folder / "nested").mkdir()
    write_image(folder / "nested" / "d.png", "L", (20, 20))
    out_dir = tmp_path / "raw"
    out_dir.mkdir()
    (out_dir / "stale.txt").write_text("old run")
    import_folder(folder, out_dir, n_valid=1, seed=3, max_side=25)
    names = split_names(out_dir)
    assert len(names["valid"]) == 1 and len(names["train"]) == 2
    assert sorted(names["train"] + names["valid"]) == ["a", "b", "c"]
    assert not (out_dir / "stale.txt").exists()
    with Image.open(next(out_dir.rglob("a.png"))) as image:
        assert image.mode == "RGB" and image.size == (25, 25)
        assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent pixels become white


def test_import_folder_missing(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    with pytest.raises(SrbenchError, match=re.escape(str(folder))):
        import_folder(folder, tmp_path / "raw", n_valid=1, seed=0, max_side=None)


def test_import_folder_unreadable_image_keeps_old_output(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "a.png", "RGB", (8, 8))
    (folder / "broken.jpg").write_bytes(b"definitely not a jpeg")
    out_dir = tmp_path / "raw"
    out_dir.mkdir()
    (out_dir / "previous.txt").write_text("kept")
    with pytest.raises(InvalidImageError, match=re.escape(str(folder / "broken.jpg"))):
        import_folder(folder, out_dir, n_valid=1, seed=0, max_side=None)
    assert relative_files(out_dir) == ["previous.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name != "photos"] == ["raw"]


def test_import_folder_too_few_images(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    write_image(folder / "only.png", "RGB", (8, 8))
    with pytest.raises(SrbenchError, match="at least 2"):
        import_folder(folder, tmp_path / "raw", n_valid=1, seed=0, max_side=None)


# --- the `srbench download` stage ----------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def stage_params(workspace: Path, **data: object) -> Path:
    """The repository's params.yaml in ``workspace``, with ``data`` overriding its data section."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update({"max_side": 16, **data})
    path = workspace / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run_stage(workspace: Path, params: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline.cli", "download", "--params", str(params), "--out", "data/raw"]
    return subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("srbench: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files_under(folder)}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace, also the current folder (the stage's lock lives in it)."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_failed_download_leaves_the_previous_raw_as_it_was(
    server: ServerState, workspace: Path, tmp_path: Path
) -> None:
    make_fake_benchmark(server.root)
    wrong = write_checksums(tmp_path / "SUMS", [Archive("benchmark.tar", "0" * 32, None)])
    raw = workspace / "data" / "raw"
    rng = np.random.default_rng(3)
    previous = {
        "train/HR/a.png": png_bytes(rng, 16),
        "valid/HR/b.png": png_bytes(rng, 16),
        "benchmark/Set5/HR/baby.png": png_bytes(rng, 16),
        "dataset.json": b'{"name": "earlier run", "source": "folder"}\n',
    }
    for name, content in previous.items():
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_bytes(content)
    params = stage_params(
        workspace,
        benchmark_sets=["Set5"],
        benchmark_mirror=server.url,
        cache_dir=str(tmp_path / "cache"),
        checksums=str(wrong),
    )
    result = run_stage(workspace, params)
    line = one_line_error(result)
    assert result.returncode == 2
    assert f"{server.url}/benchmark.tar: md5 mismatch" in line
    assert tree(raw) == previous
    assert [p.name for p in raw.parent.iterdir()] == ["raw"]  # no staging folder left
    assert server.names() == ["benchmark.tar"]


def test_full_cache_disk_is_one_line_naming_the_file(
    server: ServerState, workspace: Path, tmp_path: Path, full_disk: Path
) -> None:
    archive = make_fake_benchmark(server.root)
    sums = write_checksums(tmp_path / "SUMS", [archive])
    cache_dir = full_disk / "cache"
    params = stage_params(
        workspace,
        benchmark_sets=["Set5"],
        benchmark_mirror=server.url,
        cache_dir=str(cache_dir),
        checksums=str(sums),
    )
    result = run_stage(workspace, params)
    line = one_line_error(result)
    assert result.returncode == 1  # found before any transfer; the system refused (docs/stages.md)
    assert line == f"srbench: error: {cache_dir}: cannot write here (No space left on device)"
    assert server.names() == []
    assert list((workspace / "data").iterdir()) == []


def test_a_disk_that_fills_during_a_transfer_names_the_part_file(server: ServerState, full_disk: Path) -> None:
    archive = make_fake_benchmark(server.root)
    with pytest.raises(OSError) as error:
        fetch(f"{server.url}/benchmark.tar", full_disk / "benchmark.tar", archive.checksum)
    assert error.value.filename == str(full_disk / "benchmark.tar.part") and "No space left on device" in str(error.value)
    assert server.names() == ["benchmark.tar"]  # a full disk is not retried


def test_second_download_in_a_workspace_is_refused(server: ServerState, workspace: Path) -> None:
    params = stage_params(workspace, benchmark_sets=["Set5"], benchmark_mirror=server.url)
    with workspace_lock("download"), pytest.raises(WorkspaceBusy, match=r"download \(pid \d+\) is already running"):
        download_stage(params, Path("data/raw"))
    assert server.requests == []
    assert not (workspace / "data" / "raw").exists()


def test_download_checks_the_output_folder_first(
    server: ServerState, workspace: Path, read_only_dir: Path
) -> None:
    params = stage_params(workspace, benchmark_sets=["Set5"], benchmark_mirror=server.url)
    message = f"{read_only_dir}: cannot write here (Read-only file system)"
    with pytest.raises(OutputError, match=re.escape(message)):
        download_stage(params, read_only_dir / "raw")
    assert server.requests == []
    assert not (workspace / "mlruns").exists()  # refused before any MLflow run
