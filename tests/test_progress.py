"""Progress: a tqdm bar on a terminal, a few log lines with the numbers elsewhere, nothing when off."""

import io
import logging
import os
import select
import sys
from pathlib import Path

import pytest

from srbench.errors import SrbenchError
from srbench.progress import ENVIRONMENT, progress, progress_mode

LOGGER = "srbench.test_progress"


@pytest.fixture(autouse=True)
def no_mode_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVIRONMENT, raising=False)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_lines_are_bounded_to_the_start_and_the_end_of_a_fast_loop(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), progress(1000, "prepare train", "image", stream=io.StringIO(), log=logging.getLogger(LOGGER)) as bar:
        for _ in range(1000):
            bar.update(patches=12)
    first, last = lines(caplog)  # 1000 updates within LINE_SECONDS: two lines
    assert first.startswith("prepare train: 0/1000 images (0%, ")
    assert last.startswith("prepare train: 1000/1000 images (100%, ") and "images/s, eta 0m00s)" in last and last.endswith(" patches 12")


def test_lines_every_interval_carry_count_rate_eta_and_postfix(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger(LOGGER)
    with caplog.at_level(logging.INFO), progress(4, "train", "step", every=0.0, stream=io.StringIO(), log=log) as bar:
        for step in range(4):
            bar.update(loss=0.25 / (step + 1))
    assert len(lines(caplog)) == 5
    assert lines(caplog)[2].startswith("train: 2/4 steps (50%, ") and "steps/s, eta " in lines(caplog)[2]
    assert lines(caplog)[2].endswith(" loss 0.125")


def test_bytes_are_counted_in_mib_and_an_unknown_total_ends_with_a_line(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger(LOGGER)
    with caplog.at_level(logging.INFO):
        with progress(3 * 2**20, "download a.zip", "B", stream=io.StringIO(), log=log) as bar:
            bar.update(3 * 2**20)
        with progress(None, "download b.zip", "B", initial=2**20, stream=io.StringIO(), log=log) as bar:
            bar.update(2**20)
    assert lines(caplog)[1].startswith("download a.zip: 3.0/3.0 MiB (100%, ") and "MiB/s" in lines(caplog)[1]
    assert lines(caplog)[2].startswith("download b.zip: 1.0 MiB (")  # resumed at 1 MiB
    assert lines(caplog)[3].startswith("download b.zip: 2.0 MiB (") and lines(caplog)[3].endswith("MiB/s)")  # at close


def test_no_lines_when_the_caller_logs_its_own(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), progress(3, "train", "step", every=None, stream=io.StringIO(), log=logging.getLogger(LOGGER)) as bar:
        bar.update(3, loss=0.1)
        assert not bar.drawing
    assert lines(caplog) == []


def test_a_bar_is_drawn_on_the_stream_given_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.INFO), progress(100, "train", "step", stream=stream, mode="bar", log=logging.getLogger(LOGGER)) as bar:
        assert bar.drawing
        for _ in range(100):
            bar.update(loss=0.0123456)
    drawn = stream.getvalue()
    assert "train: 100%" in drawn and "100/100" in drawn and "loss=0.01235" in drawn and "step/s" in drawn
    assert lines(caplog) == []


def test_a_terminal_gets_a_bar_anything_else_lines(tmp_path: Path) -> None:
    leader, follower = os.openpty()  # a new pseudo-terminal says it has 0 columns: the bar takes 80
    with os.fdopen(follower, "w") as terminal:
        assert progress_mode(terminal) == "bar"
        with progress(2, "upscale a.png", "tile", stream=terminal) as bar:
            bar.update(2)
            assert bar.drawing
        drawn = b""
        while select.select([leader], [], [], 0.5)[0]:
            drawn += os.read(leader, 4096)
    os.close(leader)
    assert b"upscale a.png: 100%" in drawn
    assert progress_mode(io.StringIO()) == "lines"
    with open(tmp_path / "log.txt", "w") as log_file:
        assert progress_mode(log_file) == "lines"


def test_the_environment_chooses_and_a_wrong_value_is_one_line(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(ENVIRONMENT, "off")
    stream = io.StringIO()
    with caplog.at_level(logging.INFO), progress(5, "evaluate", "image", stream=stream, log=logging.getLogger(LOGGER)) as bar:
        bar.update(5)
    assert lines(caplog) == [] and stream.getvalue() == ""
    monkeypatch.setenv(ENVIRONMENT, "bar")
    assert progress_mode(io.StringIO()) == "bar"
    monkeypatch.setenv(ENVIRONMENT, "fancy")
    with pytest.raises(SrbenchError, match="SRBENCH_PROGRESS='fancy': choose one of bar, lines, off"):
        progress_mode()


def test_log_records_go_above_a_bar_and_the_handlers_come_back(capsys: pytest.CaptureFixture) -> None:
    console = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(console)
    try:
        handlers = list(root.handlers)
        with progress(2, "prepare", "image", mode="bar") as bar:
            bar.update()
            logging.getLogger(LOGGER).warning("a warning while the bar is drawn")
            assert console not in root.handlers  # tqdm.write() clears the bar, writes the line, redraws the bar
            bar.update()
        assert root.handlers == handlers
    finally:
        root.removeHandler(console)
    drawn = capsys.readouterr().err
    assert "a warning while the bar is drawn\n" in drawn and drawn.rindex("100%") > drawn.index("a warning")
