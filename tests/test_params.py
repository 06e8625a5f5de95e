"""params.yaml: choices checked for type as well as value, duplicate keys refused."""

from pathlib import Path

import pytest

from pipeline.params import ParamError, Params


def params_from(tmp_path: Path, text: str) -> Params:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return Params(path)


def test_a_choice_must_have_the_type_of_the_choices(tmp_path: Path) -> None:
    params = params_from(tmp_path, "prepare:\n  scale: 2.0\n  flag: 1\n  count: true\n  ok: 3\n  deterministic: false\n")
    with pytest.raises(ParamError, match=r"params.yaml: prepare.scale = 2.0: choose one of 2, 3, 4$"):
        params.choice("prepare.scale", (2, 3, 4))  # 2.0 == 2, but a float scale breaks prepare
    with pytest.raises(ParamError, match=r"prepare.flag = 1: choose one of True, False"):
        params.choice("prepare.flag", (True, False))  # 1 == True
    with pytest.raises(ParamError, match=r"prepare.count = True: choose one of 0, 1"):
        params.choice("prepare.count", (0, 1))  # True == 1
    assert params.choice("prepare.ok", (2, 3, 4)) == 3
    assert params.choice("prepare.deterministic", (True, False)) is False


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
    params = params_from(tmp_path, "base: &base {lr: 1.0, name: adam}\nsrcnn:\n  optimizer:\n    <<: *base\n    lr: 0.5\n")
    assert params.section("srcnn.optimizer") == {"lr": 0.5, "name": "adam"}
