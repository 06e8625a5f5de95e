"""`srbench ui`: the MLflow UI on this workspace's runs, opened on the quality view."""

import os
import socket
import subprocess
import sys
import urllib.parse

import typer

from pipeline.params import ParamError
from pipeline.process import logger, wait_passing_signals
from pipeline.tracking import ARTIFACTS, EXPERIMENT, TRACKING_DIR, URI_VARIABLE, VIEW_KEY, artifact_root, tracking_uri, use_store, workspace


def runs_page(base_url: str, experiment_id: str) -> str:
    """The address of the experiment's runs in the MLflow UI at ``base_url``, with the saved view
    "PSNR / SSIM" (the quality columns) and the model-training pages (not the GenAI ones)."""
    query = urllib.parse.urlencode({"viewStateShareKey": VIEW_KEY, "workflowType": "machine_learning"})
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def refuse_busy_port(host: str, port: int) -> None:
    """Refuse, in one line, a ``host``:``port`` that something already listens on (the printed
    link would lead there, and the server would fail after it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a port in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ParamError(f"--port {port}: {host}:{port} is not free ({error.strerror}); choose another --port") from error


def ui(
    host: str = typer.Option("127.0.0.1", help="Network interface to serve on (0.0.0.0: every one; see mlflow server --help on --allowed-hosts)."),
    port: int = typer.Option(5000, min=1, max=65535, help="Port to serve on."),
    server_options: list[str] = typer.Argument(
        None, metavar="-- MLFLOW_SERVER_OPTIONS", help="More options for `mlflow server`, after `--` (e.g. -- --workers 1).", show_default=False
    ),
) -> None:
    """Serve the MLflow UI on this workspace's store, mlruns/mlflow.db with mlruns/artifacts (or on
    MLFLOW_TRACKING_URI's database), and print the address of the srbench runs with their PSNR and
    SSIM columns. A plain `mlflow ui` would open an empty ./mlflow.db instead."""
    refuse_busy_port(host, port)
    import mlflow  # here, so that `srbench --help` stays fast

    user_uri = os.environ.get(URI_VARIABLE)
    if user_uri and urllib.parse.urlparse(user_uri).scheme in ("http", "https", "databricks"):
        raise ParamError(f"{URI_VARIABLE}={user_uri}: already a tracking server; open it in a browser")
    experiment_id = use_store(mlflow)  # the experiment, its tags and a moved store's locations, before serving
    root = workspace() / TRACKING_DIR
    store = user_uri or tracking_uri(root)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", host, "--port", str(port)]
    if not user_uri:  # artifacts logged through the UI's server land beside the runs' own
        command += ["--artifacts-destination", artifact_root(root)]
    command += server_options or []
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    logger.info("MLflow UI on %s (artifacts under %s)", store, root / ARTIFACTS if not user_uri else "the store's locations")
    logger.info("the %s runs, with their PSNR / SSIM columns: %s", EXPERIMENT, runs_page(f"http://{shown_host}:{port}", experiment_id))
    raise typer.Exit(wait_passing_signals(subprocess.Popen(command), grace=30))
