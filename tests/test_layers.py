"""The layers' walls, read from the source: the library imports nothing of the command line, DVC or
MLflow, and no command module imports another (what they share lives in params, process, outputs,
layout, recipe and tracking)."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"download", "prepare", "train", "evaluate", "report", "upscale", "profile", "check", "ui"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_no_command_module_imports_another() -> None:
    for name in COMMANDS:
        others = {f"pipeline.{other}" for other in COMMANDS - {name}}
        assert not imported_modules(REPO / "pipeline" / f"{name}.py") & others, name


def test_the_benchmarks_import_no_command_module() -> None:
    commands = {f"pipeline.{name}" for name in COMMANDS}
    for script in (REPO / "benchmarks").glob("*.py"):
        assert not imported_modules(script) & commands, script.name


def test_the_library_imports_nothing_of_the_command_line_dvc_or_mlflow() -> None:
    for path in (REPO / "src" / "srbench").rglob("*.py"):
        roots = {module.split(".")[0] for module in imported_modules(path)}
        assert not roots & {"typer", "click", "dvc", "mlflow", "pipeline"}, path.relative_to(REPO)
