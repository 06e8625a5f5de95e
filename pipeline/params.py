"""params.yaml, read and checked: typed access to its dotted keys, a duplicate key refused with
both lines, and the `--params` option every stage command takes."""

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
import yaml

from srbench.errors import SrbenchError
from srbench.names import model_names

PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="Parameters file (one section per stage).")


class ParamError(SrbenchError):
    """A missing or invalid parameter; the message names the file, key and value."""


class DuplicateKey(yaml.YAMLError):
    """A mapping in a YAML file gives the same key twice."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key} at line {line} (first at line {first_line})")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    silently), naming the key by its dotted path and the lines of both."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._paths: dict[yaml.Node, str] = {}  # value node -> its dotted key

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        prefix = self._paths.get(node, "")
        first_lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor``: its keys may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            dotted = f"{prefix}{key}"
            self._paths[value_node] = f"{dotted}."
            try:
                first = first_lines.get(key)
            except TypeError:  # an unhashable key: the base class refuses it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKey(dotted, line, first)
            first_lines[key] = line
        return super().construct_mapping(node, deep)

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        prefix = self._paths.get(node, "").removesuffix(".")
        for index, item in enumerate(node.value):
            self._paths[item] = f"{prefix}[{index}]."
        return super().construct_sequence(node, deep)


#: Every key of every stage's section. A model's section (one per trainable model, srbench's and
#: other packages': :func:`srbench.names.model_names`) takes :data:`MODEL_KEYS`; its ``arch`` and
#: ``optimizer`` are checked against the network and the optimiser when a recipe is read.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "data": ("source", "folder", "n_valid", "valid_images", "seed", "max_side", "div2k_mirror", "div2k_limit", "cache_dir",
             "benchmark_sets", "benchmark_mirror", "checksums"),
    "prepare": ("scale", "patch_size", "stride", "workers", "bicubic_rounding"),
    "train": ("device", "precision", "deterministic", "channels_last", "compile", "nproc", "seeds", "log_every", "validations",
              "budget", "checkpoint_every"),
    "evaluate": ("device", "lpips"),
    "report": ("models", "crop_size", "crop_images", "external", "departures"),
}
MODEL_KEYS = ("channels", "rgb_permutation", "arch", "steps", "batch_size", "patch_size", "loss_scale", "optimizer",
              "content_loss", "adversarial_weight", "vgg_weights", "vgg_rescale")


def _unknown(key: str, known: Sequence[str], prefix: str = "") -> str:
    """``key`` refused, with the nearest of the ``known`` keys (or all of them)."""
    nearest = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
    hint = f"did you mean {prefix}{nearest[0]}?" if nearest else f"known: {', '.join(known)}"
    return f"{prefix}{key}: unknown {'key' if prefix else 'section'} ({hint})"


def schema_problem(data: dict[Any, Any]) -> str | None:
    """The first key of params ``data`` that no stage reads (with the nearest known one), or the
    first number anywhere in it that is not finite; None when there is none."""
    models = model_names()
    for section, values in data.items():
        known = SECTION_KEYS.get(section, MODEL_KEYS if section in models else None)
        if known is None:
            return _unknown(str(section), [*SECTION_KEYS, *models])
        if isinstance(values, dict):
            for key in values:
                if key not in known:
                    return _unknown(str(key), known, f"{section}.")
    return _not_finite(data)


def _not_finite(value: Any, key: str = "") -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key} = {value}: not a finite number"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        if problem := _not_finite(item, f"{key}[{name}]" if isinstance(name, int) else f"{key}.{name}" if key else str(name)):
            return problem
    return None


class Params:
    """params.yaml with typed, checked access: ``params.integer("srcnn.steps", minimum=1)``; the
    whole file is checked first (:func:`schema_problem`: no unknown key, no infinite number)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ParamError(f"{path}: parameters file not found")
        try:
            data = yaml.load(path.read_text(), Loader=UniqueKeyLoader)
        except DuplicateKey as error:
            raise ParamError(f"{path}: {error}") from error
        except yaml.YAMLError as error:
            raise ParamError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from error
        except UnicodeDecodeError as error:
            raise ParamError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
        if not isinstance(data, dict):
            raise ParamError(f"{path}: expected a mapping of sections")
        if problem := schema_problem(data):
            raise ParamError(f"{path}: {problem}")
        self.path = path
        self.data = data

    def _fail(self, key: str, value: Any, problem: str) -> ParamError:
        return ParamError(f"{self.path}: {key} = {value!r}: {problem}")

    def get(self, key: str) -> Any:
        """The raw value at a dotted ``key``; a missing key is an error."""
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ParamError(f"{self.path}: missing key {key}")
            node = node[part]
        return node

    def section(self, key: str) -> dict[str, Any]:
        value = self.get(key)
        if not isinstance(value, dict):
            raise self._fail(key, value, "expected a mapping")
        return value

    def integer(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, value, "expected an integer")
        if minimum is not None and value < minimum:
            raise self._fail(key, value, f"must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise self._fail(key, value, f"must be <= {maximum}")
        return value

    def optional_integer(self, key: str, minimum: int | None = None) -> int | None:
        return None if self.get(key) is None else self.integer(key, minimum)

    def positive_float(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self._fail(key, value, "must be a positive number")
        return float(value)

    def non_negative_float(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise self._fail(key, value, "must be a number >= 0")
        return float(value)

    def optional_positive_float(self, key: str) -> float | None:
        return None if self.get(key) is None else self.positive_float(key)

    def choice(self, key: str, choices: Sequence[Any]) -> Any:
        """The value at ``key``, one of ``choices`` in value and type (``2.0`` is not ``2``, ``1`` not ``True``)."""
        value = self.get(key)
        if not any(type(value) is type(choice) and value == choice for choice in choices):
            raise self._fail(key, value, f"choose one of {', '.join(map(str, choices))}")
        return value

    def string(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, value, "expected a non-empty string")
        return value

    def existing_file(self, key: str) -> Path:
        path = Path(self.string(key)).expanduser()
        if not path.is_file():
            raise self._fail(key, str(path), "file not found")
        return path

    def existing_dir(self, key: str) -> Path:
        path = Path(self.string(key)).expanduser()
        if not path.is_dir():
            raise self._fail(key, str(path), "folder not found")
        return path


PROFILES = Path("profiles")


ABSENT = "(absent)"


def differences(values: Any, profile: Any, key: str = "") -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two params mappings, with both values (a key
    only one of them has: :data:`ABSENT` in the other)."""
    if not (isinstance(values, dict) and isinstance(profile, dict)):
        return {} if values == profile else {key: (values, profile)}
    found: dict[str, tuple[Any, Any]] = {}
    for name in dict.fromkeys([*values, *profile]):
        found |= differences(values.get(name, ABSENT), profile.get(name, ABSENT), f"{key}.{name}" if key else str(name))
    return found


def read_profiles() -> dict[str, dict[str, Any]]:
    """The values of every profile in this workspace's profiles/, by name (none without the folder)."""
    return {path.stem: Params(path).data for path in sorted(PROFILES.glob("*.yaml"))}


def matching_profile(values: dict[str, Any]) -> str | None:
    """The profile whose values ``values`` are (the params of a training, say), or None: edited
    values (`dvc exp run -S ...`), or no profile here."""
    return next((name for name, profile in read_profiles().items() if not differences(values, profile)), None)
