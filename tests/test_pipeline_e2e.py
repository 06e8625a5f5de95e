"""End to end: `dvc repro` on a tiny profile in a temporary copy of the repository."""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from PIL import Image

from local_server import free_port, wait_until_served
from pipeline.layout import Outputs
from pipeline.tracking import EXPERIMENT, tracking_uri
from pipeline_repo import MODELS, REPO, STAGES, copy_repo, dvc, merge, ran_stages, srbench, stages
from srbench.files import file_digest

TINY = {
    "data": {"max_side": 64, "valid_images": ["chelsea", "coffee"]},
    "prepare": {"patch_size": 32, "stride": 32, "workers": 1},
    "train": {"log_every": 2, "validations": 2, "checkpoint_every": 4},
    "srcnn": {"steps": 6, "batch_size": 4, "patch_size": 16},
    "srcnn-seed": {"steps": 4, "batch_size": 4, "patch_size": 16},
    "vdsr": {"steps": 4, "batch_size": 4, "patch_size": 16, "arch": {"depth": 4, "num_filters": 16}},
    "vdsr-seed": {"steps": 4, "batch_size": 4, "patch_size": 16, "arch": {"num_filters": 16, "num_layers": 4}},
    "srresnet": {"steps": 3, "batch_size": 2, "patch_size": 16, "arch": {"num_features": 16, "num_blocks": 2}},
    "srgan": {"steps": 2, "batch_size": 2, "patch_size": 16},
    "srgan-seed": {"steps": 2, "batch_size": 2, "patch_size": 16, "arch": {"num_features": 16, "num_blocks": 2}},
    "report": {"crop_size": 32},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    root = copy_repo(tmp_path_factory.mktemp("repo"), params)
    dvc("repro", cwd=root)
    return root


CARD_KEYS = {"model", "seed", "scale", "arch", "device", "device_name", "precision", "threads", "world_size", "torch", "steps", "batch_size"}
COST_KEYS = {"training_seconds", "wall_seconds", "images_seen", "steps_per_second", "peak_host_memory_mb"}


def numbers_only(values: dict) -> bool:
    """Whether every leaf of ``values`` is a number (what DVC's metrics tables show well)."""
    return all(
        numbers_only(value) if isinstance(value, dict) else isinstance(value, (int, float)) and not isinstance(value, bool)
        for value in values.values()
    )


def test_metrics_for_every_model(repo: Path) -> None:
    for model in ["bicubic", *MODELS]:
        files = Outputs(model, None if model == "bicubic" else 0)
        headline = json.loads((repo / files.headline).read_text())
        assert headline == {"valid": {"psnr_y": pytest.approx(headline["valid"]["psnr_y"]), "ssim_y": pytest.approx(headline["valid"]["ssim_y"])}}
        metrics = json.loads((repo / files.results / "metrics.json").read_text())
        assert set(metrics) == {"valid"} and numbers_only(metrics)  # no benchmark sets in the quick profile
        valid = metrics["valid"]
        assert {key: valid[key] for key in ("psnr_y", "ssim_y")} == headline["valid"]
        assert set(valid) == {
            "psnr_y", "ssim_y", "psnr_rgb", "mean_error_r", "mean_error_g", "mean_error_b", "worst_channel_error",
            "max_worst_channel_error", "keras_accuracy", "megapixels_per_second", "n_images",
        }
        per_image = json.loads((repo / files.results / "valid" / "per_image.json").read_text())
        assert valid["max_worst_channel_error"] == max(values["worst_channel_error"] for values in per_image.values())
        assert 0 < valid["keras_accuracy"] <= 1
        assert 5 < valid["psnr_y"] < 100 and 0 < valid["ssim_y"] <= 1
        evaluation = json.loads((repo / files.results / "evaluation.json").read_text())
        assert set(evaluation) == {"lpips", "device"} and evaluation["device"] == "cpu"
        assert "not found" in evaluation["lpips"]  # no AlexNet weights offline: no lpips key in the metrics
        assert len(list((repo / files.results / "valid" / "sr").glob("*.png"))) == 2
    for model in MODELS:
        files = Outputs(model, 0)
        summary = json.loads((repo / files.training_summary).read_text())
        assert numbers_only(summary) and summary["n_parameters"] > 0 and set(summary) >= COST_KEYS and summary["seed"] == 0
        assert summary["wall_seconds"] > summary["training_seconds"] > 0 and summary["peak_host_memory_mb"] > 100
        assert summary["images_seen"] == summary["steps"] * TINY[model]["batch_size"] and "peak_gpu_memory_mb" not in summary  # no GPU
        assert (repo / files.weights).is_file()
        card = json.loads((repo / files.card).read_text())
        assert set(card) >= CARD_KEYS and card["model"] == model and card["device"] == "cpu" and card["precision"] == "fp32"
        validations = [row for row in csv.DictReader((repo / files.curves).open()) if row["val_psnr_y"]]
        assert [int(row["step"]) for row in validations][-1] == TINY[model]["steps"] and len(validations) == 2  # train.validations
    shown = dvc("metrics", "show", cwd=repo)
    assert "valid.psnr_y" in shown and "valid.ssim_y" in shown and "keras" not in shown  # the headline only
    assert max(len(line) for line in shown.splitlines()) <= 120, shown


def test_dvc_plots_draw_every_model_in_one_plot(repo: Path) -> None:
    plots = json.loads(dvc("plots", "show", "--json", cwd=repo))
    assert "errors" not in plots and sorted(plots["data"]) == ["training-loss", "validation-psnr-vs-images", "validation-psnr-vs-step"]
    for name, (x, y) in {"validation-psnr-vs-step": ("step", "val_psnr_y"), "training-loss": ("step", "loss")}.items():
        spec = plots["data"][name][0]["content"]
        files = {row["filename"] for row in spec["data"]["values"] if row.get(y) not in ("", None)}
        assert files == {f"{model}.csv" for model in MODELS}, name  # DVC names each line by its file
        assert spec["encoding"]["x"]["field"] == x and spec["encoding"]["y"]["field"] == y
    loss, psnr = (plots["data"][name][0]["content"]["encoding"] for name in ("training-loss", "validation-psnr-vs-step"))
    assert loss["x"]["scale"] == loss["y"]["scale"] == psnr["x"]["scale"] == {"type": "log"} and psnr["color"]["field"] == "filename"


def test_report_has_a_row_per_model_and_figures(repo: Path) -> None:
    report = (repo / "reports" / "report.md").read_text()
    rows = report[report.index("| Model"):].split("\n\n")[0].splitlines()[2:]  # the table of means, under its header
    assert [row.split("|")[1].strip() for row in rows] == ["bicubic", *MODELS]
    assert "## sample photographs validation" in report
    assert "- srgan content loss: mse." in report and "- srgan-seed content loss: vgg34 (random weights)." in report
    assert "## Where this profile departs from the papers" in report and "- **vdsr**:" in report
    header = report[report.index("| Model"):].splitlines()[0]
    assert "Published" not in header and all(len(row.split("|")) == len(header.split("|")) for row in rows)  # nothing published here
    assert "Conventions: Y is BT.601 luma" in report and "Paired Y-PSNR" in report and "One seed (`train.seeds` = [0])" in report
    assert "## Cost" in report and "| srgan | " in report and "(srresnet " in report  # srgan's cost includes its srresnet's
    assert "| Colour error (levels) |" in report
    flagged = []
    for model in ["bicubic", *MODELS]:
        per_image = json.loads((repo / Outputs(model, None if model == "bicubic" else 0).results / "valid" / "per_image.json").read_text())
        cast = [name for name, values in per_image.items() if values["worst_channel_error"] > 2]
        line = f"**{model}**: mean colour error above 2 grey levels on {len(cast)} of {len(per_image)} images (worst: "
        assert (line in report) == bool(cast), line
        flagged += cast
    assert ("Every model's mean colour error stays within 2 grey levels on every image." in report) == (not flagged)
    figures = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", report)
    assert "training_curves.png" in figures and len(figures) >= 2  # the curves and the crops
    for figure in figures:
        with Image.open(repo / "reports" / figure) as image:
            assert image.width > 300 and image.height > 200


def test_mlflow_has_a_run_per_stage_and_model(repo: Path) -> None:
    mlflow.set_tracking_uri(tracking_uri(repo / "mlruns"))
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    stages = sorted(runs["tags.stage"])
    assert stages == sorted(STAGES)
    assert set(runs["status"]) == {"FINISHED"}
    trained = runs[runs["tags.stage"].str.startswith("train")]
    assert sorted(trained["tags.model"]) == sorted(MODELS)
    assert trained["metrics.psnr_y"].notna().all() and (trained["tags.seed"] == "0").all()
    assert trained["metrics.wall_seconds"].notna().all() and trained["metrics.peak_host_memory_mb"].notna().all()
    assert (trained["params.device"] == "cpu").all()
    assert (trained["params.torch_threads"].astype(int) >= 1).all() and trained["params.cpu"].str.len().min() > 0
    srgan = trained[trained["tags.model"] == "srgan"].iloc[0]
    assert srgan["tags.content_loss"] == "mse" and srgan["params.init"] == "models/seed0/srresnet.pt"
    assert srgan["params.arch.num_blocks"] == "2"  # taken from the SRResNet it starts from
    client = mlflow.MlflowClient()
    history = client.get_metric_history(srgan["run_id"], "d_real")
    assert [point.step for point in history] == [1, 2]  # train.validations: 2
    assert {a.path for a in client.list_artifacts(srgan["run_id"])} >= {"samples", "curves.csv"}
    scored = runs[runs["tags.stage"].str.startswith(("train", "evaluate"))].sort_values("metrics.psnr_y", ascending=False)
    assert scored["metrics.psnr_y"].notna().all() and "bicubic" in set(scored["tags.model"])  # one column ranks them all
    evaluated = runs[runs["tags.stage"].str.startswith("evaluate@") & (runs["tags.model"] != "bicubic")]
    assert sorted(evaluated["tags.model_version"]) == sorted(f"srbench-{model}/1" for model in MODELS)  # each names what it scored


def test_second_repro_is_a_no_op_and_a_vdsr_change_reruns_only_vdsr(repo: Path) -> None:
    assert "Data and pipelines are up to date" in dvc("repro", cwd=repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["vdsr"]["steps"] = 5
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "vdsr.steps" in dvc("params", "diff", cwd=repo)
    assert ran_stages(dvc("repro", cwd=repo)) == {"train@vdsr-0", "evaluate@vdsr-0", "report"}
    assert json.loads((repo / Outputs("vdsr", 0).training_summary).read_text())["steps"] == 5


def test_srgan_is_downstream_of_srresnet(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["srresnet"]["steps"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    expected = {"train@srresnet-0", "evaluate@srresnet-0", "train-srgan@0", "evaluate@srgan-0", "report"}
    assert ran_stages(dvc("repro", cwd=repo)) == expected


def test_a_second_seed_trains_only_its_own_stages_and_the_report_shows_the_spread(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["seeds"] = [0, 1]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    added = stages((0, 1)) - STAGES
    assert ran_stages(dvc("repro", cwd=repo)) == added | {"report"} and all(stage.endswith("1") for stage in added)
    for model in MODELS:
        assert json.loads((repo / Outputs(model, 1).card).read_text())["seed"] == 1
    report = (repo / "reports" / "report.md").read_text()
    assert "Mean ± sample standard deviation over 2 seeds (`train.seeds` = [0, 1])" in report
    rows = report[report.index("| Model"):].split("\n\n")[0].splitlines()[2:]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        if cells[0] == "bicubic":
            assert "±" not in cells[3]
        else:
            psnr = [json.loads((repo / Outputs(cells[0], seed).results / "metrics.json").read_text())["valid"]["psnr_y"] for seed in (0, 1)]
            mean, spread = (float(number) for number in cells[3].split(" ± "))
            assert mean == pytest.approx(sum(psnr) / 2, abs=0.006) and spread == pytest.approx(abs(psnr[0] - psnr[1]) / 2**0.5, abs=0.006)


def test_the_paper_profile_dry_runs_every_stage(repo: Path) -> None:
    srbench("profile", "paper", "--force", cwd=repo)  # --force: the tiny params match no profile
    try:
        # A dry run re-checks each stage's own deps and params: the evaluate stages' are unchanged
        # (the same `evaluate` params, the model files a dry run does not rebuild), so it lists the rest.
        assert ran_stages(dvc("repro", "--dry", cwd=repo)) == {stage for stage in STAGES if not stage.startswith("evaluate")}
        assert json.loads((repo / "data" / "raw" / "dataset.json").read_text())["source"] == "samples"  # nothing ran
    finally:
        subprocess.run(["git", "checkout", "params.yaml"], cwd=repo, check=True)


def test_a_clone_pulls_the_models_from_the_remote(repo: Path, tmp_path: Path) -> None:
    """The team workflow docs/dvc.md documents: a clone of srbench as shipped has no remote and
    `dvc pull` says so in its first line; the team adds one and commits it, commits dvc.lock and
    `dvc push`es; a fresh `git clone` then `dvc pull`s the same files and `dvc repro` is a no-op."""
    for leftover in ("models/seed1", "results/seed1", "metrics/train/seed1", "metrics/eval/seed1", "plots/train/seed1"):
        shutil.rmtree(repo / leftover, ignore_errors=True)  # seed 1's files, no stage's outputs since seeds went back to [0]
    dvc("repro", cwd=repo)  # the outputs of the committed params again (earlier tests changed them): DVC's run cache
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "trained"], cwd=repo, check=True)
    shipped = tmp_path / "shipped"
    subprocess.run(["git", "clone", "-q", str(repo), str(shipped)], check=True)
    pulled = subprocess.run([sys.executable, "-m", "dvc", "pull"], cwd=shipped, env={**os.environ, "DVC_NO_ANALYTICS": "1"}, capture_output=True, text=True)
    assert pulled.returncode != 0 and pulled.stderr.splitlines()[0] == "No remote provided and no default remote set."

    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "storage", str(remote), cwd=repo)
    subprocess.run([*git, "commit", "-q", "-m", "DVC remote", ".dvc/config"], cwd=repo, check=True)
    dvc("push", cwd=repo)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / Outputs("srcnn", 0).weights).exists()
    dvc("pull", cwd=clone)
    for model in MODELS:
        for path in (Outputs(model, 0).weights, Outputs(model, 0).card, Outputs(model, 0).results / "metrics.json"):
            assert file_digest(clone / path) == file_digest(repo / path), path
    assert (clone / "reports" / "report.md").read_text() == (repo / "reports" / "report.md").read_text()
    assert "Data and pipelines are up to date" in dvc("repro", cwd=clone)


def test_queued_trainings_run_side_by_side_and_log_to_one_tracking_server(repo: Path) -> None:
    """docs/gpu.md's recipe for many experiments: a tracking server (`srbench ui`), one queued
    experiment per training stage, `dvc queue start -j 2` with the server's address; the two
    trainings overlap, every run is FINISHED, registered and tagged with its experiment."""
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "srbench"), "ui", "--port", str(port)], cwd=repo, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_served(f"http://127.0.0.1:{port}/health", 120)
        seeds = "train.seeds=[0,4]"
        for stage in ("train@srcnn-4", "train@vdsr-4"):
            dvc("exp", "run", "--queue", "-S", seeds, stage, cwd=repo)
        queue_env = {**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=repo, env=queue_env, check=True, capture_output=True)
        deadline = time.monotonic() + 600
        while re.search(r"\b(Queued|Running)\b", status := dvc("queue", "status", cwd=repo)):
            assert time.monotonic() < deadline, status
            time.sleep(2)
        dvc("queue", "stop", cwd=repo)
        assert status.count("Success") == 2, status

        client = mlflow.MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
        trained = client.search_runs([experiment], "tags.seed = '4'")
        assert sorted(run.data.tags["model"] for run in trained) == ["srcnn", "vdsr"]
        assert {run.info.status for run in trained} == {"FINISHED"} and all(run.data.tags.get("dvc_exp") for run in trained)
        first, second = sorted(trained, key=lambda run: run.info.start_time)
        assert second.info.start_time < first.info.end_time, "the queued trainings ran one after the other"
        versions = {}
        for run in trained:
            [version] = client.search_model_versions(f"run_id = '{run.info.run_id}'")
            assert version.tags["seed"] == "4" and version.tags["dvc_exp"] == run.data.tags["dvc_exp"]
            versions[run.data.tags["model"]] = f"{version.name}/{version.version}"

        # One report: the workspace's `dvc repro` with the same seeds finds the queued trainings in
        # DVC's run cache (their outputs, summaries and curves included) and only evaluates.
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["train"]["seeds"] = [0, 4]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        os.environ["MLFLOW_TRACKING_URI"] = queue_env["MLFLOW_TRACKING_URI"]
        output = dvc("repro", "train@srcnn-4", "train@vdsr-4", "evaluate@srcnn-4", cwd=repo)
        assert ran_stages(output) == {"evaluate@srcnn-4"}, output
        assert "Stage 'train@srcnn-4' is cached - skipping run" in output and "Stage 'train@vdsr-4' is cached - skipping run" in output
        for model in ("srcnn", "vdsr"):
            files = Outputs(model, 4)
            assert all((repo / path).is_file() for path in (files.weights, files.card, files.training_summary, files.curves))
        assert len(client.search_runs([experiment], "tags.seed = '4' and tags.stage LIKE 'train@%'")) == 2  # nothing trained again
        [evaluation] = client.search_runs([experiment], "tags.stage = 'evaluate@srcnn-4'")
        assert evaluation.data.tags["model_version"] == versions["srcnn"]
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        subprocess.run(["git", "checkout", "params.yaml"], cwd=repo, check=True)

