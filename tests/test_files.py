"""Writing files: whole or not at all, with unique temporary names, leftovers of killed writers
removed, a full disk as an error naming the file."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srbench.files import atomic_path, file_digest, save_torch, staged_folder, write_text


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_failed_write_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError), atomic_path(target) as tmp:
        tmp.write_text("half")
        1 / 0
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["model.pt"]


def test_two_writers_of_one_target_never_share_a_temporary_file(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.json") as first, atomic_path(tmp_path / "a.json") as second:
        first.write_text("first")
        second.write_text("second")
        assert first != second and first.parent == second.parent == tmp_path
    assert (tmp_path / "a.json").read_text() == "first" and os.listdir(tmp_path) == ["a.json"]  # the last renamed wins


def test_save_torch_on_a_full_disk_names_the_file_and_leaves_nothing(full_disk: Path) -> None:
    """torch.save straight to the file said 'iostream error'; now it is the system's error."""
    with pytest.raises(OSError) as error:
        save_torch({"weights": torch.zeros(10_000)}, full_disk / "checkpoint.pt")
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(full_disk / "checkpoint.pt")
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_leftovers_of_a_killed_writer_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead, alive = dead_pid(), os.getpid()
    (tmp_path / f".report.md.{dead}.ab12cd34.tmp").write_text("half")
    (tmp_path / f".report.md.{alive}.ab12cd34.tmp").write_text("being written")
    (tmp_path / f".results.{dead}.x1y2.staging").mkdir()
    (tmp_path / f".results.{dead}.x1y2.staging" / "sr.png").write_text("half")
    write_text(tmp_path / "report.md", "done")
    with staged_folder(tmp_path / "results") as staging:
        (staging / "per_image.json").write_text("{}")
    assert sorted(os.listdir(tmp_path)) == [f".report.md.{alive}.ab12cd34.tmp", "report.md", "results"]


def test_a_staged_folder_replaces_the_old_one_whole_with_normal_permissions(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "out") as staging:
        (staging / "new.txt").write_text("half")
        raise RuntimeError("failed midway")
    assert os.listdir(tmp_path / "out") == ["old.txt"] and os.listdir(tmp_path) == ["out"]
    with staged_folder(tmp_path / "out") as staging:
        (staging / "new.txt").write_text("new")
    umask = os.umask(0)
    os.umask(umask)
    assert os.listdir(tmp_path / "out") == ["new.txt"] and (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_sampled_digest_sees_a_change_in_a_sampled_block(tmp_path: Path) -> None:
    data = bytearray(os.urandom(64 * 65536 * 2))
    (tmp_path / "store").write_bytes(data)
    before = file_digest(tmp_path / "store", sample_blocks=8)
    data[-1] ^= 1  # the last block is always sampled
    (tmp_path / "store").write_bytes(data)
    assert file_digest(tmp_path / "store", sample_blocks=8) != before
    assert file_digest(tmp_path / "store") != file_digest(tmp_path / "store", sample_blocks=8)
