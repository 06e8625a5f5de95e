"""params.yaml: choices checked for type as well as value, duplicate and unknown keys and infinite numbers refused."""

from pathlib import Path

import pytest

from pipeline.params import ParamError, Params


def params_from(tmp_path: Path, text: str) -> Params:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return Params(path)


def test_a_choice_must_have_the_type_of_the_choices(tmp_path: Path) -> None:
    params = params_from(tmp_path, "prepare:\n  scale: 2.0\n  workers: 3\ntrain:\n  compile: 1\n  nproc: true\n  deterministic: false\n")
    with pytest.raises(ParamError, match=r"params.yaml: prepare.scale = 2.0: choose one of 2, 3, 4$"):
        params.choice("prepare.scale", (2, 3, 4))  # 2.0 == 2, but a float scale breaks prepare
    with pytest.raises(ParamError, match=r"train.compile = 1: choose one of True, False"):
        params.choice("train.compile", (True, False))  # 1 == True
    with pytest.raises(ParamError, match=r"train.nproc = True: choose one of 0, 1"):
        params.choice("train.nproc", (0, 1))  # True == 1
    assert params.choice("prepare.workers", (2, 3, 4)) == 3
    assert params.choice("train.deterministic", (True, False)) is False


@pytest.mark.parametrize(
    "text, message",
    [
        ("prepare:\n  scale: 2\n  stride: 32\n  scale: 4\n", "duplicate key prepare.scale at line 4 (first at line 2)"),
        ("train: {seed: 0}\nprepare: {}\ntrain: {seed: 1}\n", "duplicate key train at line 3 (first at line 1)"),
        ("srcnn:\n  arch: {n1: 64, n1: 32}\n", "duplicate key srcnn.arch.n1 at line 2 (first at line 2)"),
        ("report:\n  models: [bicubic]\n  departures:\n    - {srcnn: a, srcnn: b}\n", "duplicate key report.departures[0].srcnn at line 4"),
    ],
)
def test_a_duplicate_key_is_one_line_naming_file_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ParamError) as error:
        params_from(tmp_path, text)  # PyYAML alone keeps the last value silently
    assert str(error.value).startswith(f"{tmp_path / 'params.yaml'}: {message}")
    assert "\n" not in str(error.value)


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    params = params_from(tmp_path, "vdsr: {optimizer: &base {lr: 1.0, name: adam}}\nsrcnn:\n  optimizer:\n    <<: *base\n    lr: 0.5\n")
    assert params.section("srcnn.optimizer") == {"lr": 0.5, "name": "adam"}


@pytest.mark.parametrize(
    "text, message",
    [  # issue 22, case 7: a typo in a param name changed nothing and said nothing
        ("train:\n  budgt: 0.5\n", "train.budgt: unknown key (did you mean train.budget?)"),
        ("train:\n  bogus: 1\n", "train.bogus: unknown key (known: device, precision, deterministic, "),
        ("srcnn:\n  stpes: 10\n", "srcnn.stpes: unknown key (did you mean srcnn.steps?)"),
        ("prepare:\n  bogus: 1\n", "prepare.bogus: unknown key (known: scale, patch_size, stride, workers, bicubic_rounding)"),
        ("srcnnn:\n  steps: 10\n", "srcnnn: unknown section (did you mean srcnn?)"),
        ("extra: {}\n", "extra: unknown section (known: data, prepare, train, evaluate, report, srcnn, "),
        # issue 22, case 12: .inf passed the checks (an OverflowError traceback, or a training into NaN)
        ("train:\n  budget: .inf\n", "train.budget = inf: not a finite number"),
        ("srcnn:\n  optimizer: {name: adam, lr: .inf}\n", "srcnn.optimizer.lr = inf: not a finite number"),
        ("data:\n  valid_images: [a, .nan]\n", "data.valid_images[1] = nan: not a finite number"),
    ],
)
def test_an_unknown_key_or_an_infinite_number_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ParamError) as error:
        params_from(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path / 'params.yaml'}: {message}") and "\n" not in str(error.value)


def test_every_shipped_profile_passes_the_schema() -> None:
    for path in [Path("params.yaml"), *sorted(Path("profiles").glob("*.yaml"))]:
        Params(Path(__file__).resolve().parents[1] / path)
