"""`srbench --help` and usage errors answer before torch is imported (issue 10: 4.2 s before)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline_repo import REPO

HEAVY = ("torch", "torchvision", "mlflow", "matplotlib", "dvc", "skimage", "numpy", "PIL")  # the CLI answers in ~0.1 s of imports


def _modules_after(code: str, listing: Path) -> set[str]:
    """The modules loaded once ``code`` has run in a fresh interpreter."""
    script = f"import sys\ntry:\n{textwrap.indent(code, '    ')}\nfinally:\n    open({str(listing)!r}, 'w').write('\\n'.join(sys.modules))"
    subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
    return set(listing.read_text().split())


def test_the_cli_module_imports_no_heavy_package(tmp_path: Path) -> None:
    loaded = _modules_after("import pipeline.cli", tmp_path / "modules")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["evaluate", "--help"],
        ["upscale", "--help"],
        ["train"],  # missing argument: a usage error
        ["evaluate", "nosuchmodel"],
        ["train", "nosuchmodel"],
        ["check", "nosuchmodel"],
        ["upscale", "missing.png", "--model", "nosuchmodel"],
        ["--version"],
    ],
)
def test_help_and_usage_errors_do_not_import_torch(args: list[str], tmp_path: Path) -> None:
    loaded = _modules_after(f"sys.argv = ['srbench', *{args!r}]\nfrom pipeline.cli import main\nmain()", tmp_path / "modules")
    assert "torch" not in loaded
