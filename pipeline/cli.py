"""The `srbench` command: one subcommand per pipeline stage, plus `upscale`."""

import importlib.metadata
import sys

import typer

from pipeline.check import check
from pipeline.download import download
from pipeline.evaluate import evaluate
from pipeline.prepare import prepare
from pipeline.process import Terminated, setup_logging, stop_on_sigterm
from pipeline.profile import profile
from pipeline.report import report
from pipeline.train import train
from pipeline.ui import ui
from pipeline.upscale import upscale
from srbench.errors import SrbenchError

app = typer.Typer(
    help="srbench: a reproducible super-resolution benchmark (SRCNN, VDSR, SRGAN) with DVC and MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default: models/seedN/MODEL.pt]" is shown, not eaten as markup
)
for command in (download, prepare, train, evaluate, report, upscale, profile, check, ui):
    app.command()(command)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"srbench {importlib.metadata.version('srbench')}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """srbench: a reproducible super-resolution benchmark (SRCNN, VDSR, SRGAN) with DVC and MLflow."""


def main() -> None:
    """Entry point: a user error is one line on stderr and exit status 2; a file or folder the
    system refuses (permissions, a full disk) one line naming it and exit status 1; SIGTERM and Ctrl-C
    unwind (every stage cleans up, its MLflow run ends KILLED) and exit 143 and 130 (Click turns
    Ctrl-C into "Aborted!" and 130)."""
    setup_logging()
    stop_on_sigterm()
    try:
        app()
    except SrbenchError as error:
        print(f"srbench: error: {error}", file=sys.stderr)
        sys.exit(error.exit_status)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"srbench: error: {where}{error.strerror or error}", file=sys.stderr)
        sys.exit(1)
    except Terminated as signal_name:
        print(f"srbench: stopped by {signal_name}", file=sys.stderr)
        sys.exit(143)


if __name__ == "__main__":  # torchrun -m pipeline.cli train MODEL
    main()
