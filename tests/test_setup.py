"""requirements.lock, the exact versions setup.sh installs: consistent with pyproject.toml's ranges
and complete enough for pip's --require-hashes mode."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s\\]+) \\$")
FROM_PYPROJECT = re.compile(r"#\s+(via\s+)?srbench \(pyproject\.toml\)$", re.MULTILINE)


def lock_entries() -> dict[str, list[str]]:
    """{canonical name: the entry's lines}: a pin line and the indented hash and comment lines after it."""
    entries: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            lines = entries.setdefault(canonicalize_name(re.split(r"[=<>!~ ;\[]", line)[0]), [])
        lines.append(line)
    return entries


def pyproject_requirements() -> list[Requirement]:
    """The runtime dependencies and the dev extra (setup.sh installs both)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_entry_is_an_exact_pin_with_hashes() -> None:
    entries = lock_entries()
    assert len(entries) > 100  # torch, DVC and MLflow bring many
    for name, lines in entries.items():
        assert PIN.fullmatch(lines[0]), f"requirements.lock: {lines[0]!r} is not a name==version pin"
        assert any(line.strip().startswith("--hash=sha256:") for line in lines), f"requirements.lock: {name} has no hash"


def test_the_lock_pins_every_pyproject_dependency_within_its_range() -> None:
    entries = lock_entries()
    for requirement in pyproject_requirements():
        name = canonicalize_name(requirement.name)
        assert name in entries, f"requirements.lock: no pin for {requirement} (regenerate it: README, Setup)"
        pinned = Version(PIN.fullmatch(entries[name][0])["version"])
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"requirements.lock: {name}=={pinned} is outside pyproject.toml's {requirement}"
        )


def test_the_lock_was_compiled_from_this_pyproject() -> None:
    """uv notes `via srbench (pyproject.toml)` on each direct dependency: a dependency dropped from
    pyproject.toml but still in the lock shows as one too many."""
    direct = {name for name, lines in lock_entries().items() if FROM_PYPROJECT.search("\n".join(lines))}
    assert direct == {canonicalize_name(requirement.name) for requirement in pyproject_requirements()}
