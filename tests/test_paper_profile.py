"""The paper profile: the papers' recipes, and a tiny-budget real run of the whole DAG against
fake DIV2K and EDSR benchmark archives served on 127.0.0.1. (Its `dvc repro --dry` is in
test_pipeline_e2e: DVC's dry run needs the first stage's outputs to exist.)"""

import json
from pathlib import Path

import yaml
from fake_data import make_fake_benchmark, make_fake_div2k, serve, write_checksums
from pipeline_repo import MODELS, REPO, STAGES, copy_repo, dvc, merge, ran_stages, srbench

PAPER = yaml.safe_load((REPO / "profiles" / "paper.yaml").read_text())
TINY_BUDGET = {  # the paper's recipes and architectures, one step each, on small fake images
    "prepare": {"patch_size": 48, "stride": 48, "workers": 1},
    "train": {"budget": 1.0e-6, "device": "cpu", "log_every": 1,
              "compile": False},  # torch.compile on a CPU takes minutes for 7 models (tests/test_recipes.py compiles one)
    "srcnn": {"batch_size": 2},
    "srcnn-seed": {"batch_size": 2, "patch_size": 48},
    "vdsr": {"batch_size": 2},
    "vdsr-seed": {"batch_size": 2, "patch_size": 48},
    "srresnet": {"batch_size": 2, "patch_size": 48},
    "srgan": {"batch_size": 2, "patch_size": 48, "vgg_weights": "random"},  # no ImageNet VGG offline
    "srgan-seed": {"batch_size": 2, "patch_size": 48, "vgg_weights": "random"},
    "evaluate": {"device": "cpu"},
    "report": {"crop_size": 32},
}


def test_the_paper_profile_is_the_papers_recipe() -> None:
    assert PAPER["data"]["source"] == "div2k" and PAPER["prepare"]["scale"] == 4
    assert PAPER["data"]["benchmark_sets"] == ["Set5", "Set14", "B100", "Urban100"]
    vdsr = PAPER["vdsr"]
    assert (vdsr["batch_size"], vdsr["optimizer"]["name"], vdsr["optimizer"]["lr"], vdsr["optimizer"]["momentum"]) == (64, "sgd", 0.1, 0.9)
    assert vdsr["optimizer"]["decay_every"] * 4 == vdsr["steps"] and vdsr["optimizer"]["weight_decay"] == 1e-4
    assert vdsr["optimizer"]["grad_clip_mode"] == "adjustable"
    assert (PAPER["srresnet"]["steps"], PAPER["srresnet"]["patch_size"], PAPER["srresnet"]["batch_size"]) == (10**6, 96, 16)
    srgan = PAPER["srgan"]
    assert (srgan["steps"], srgan["optimizer"]["decay_every"], srgan["content_loss"], srgan["adversarial_weight"]) == (2 * 10**5, 10**5, "vgg54", 1e-3)
    assert PAPER["srgan-seed"]["content_loss"] == "vgg34"


def test_tiny_budget_run_on_served_div2k_and_benchmark(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    archives = [*make_fake_div2k(served, scale=4, n_train=3, n_valid=2, side=96).values(), make_fake_benchmark(served)]
    root = copy_repo(tmp_path / "repo")
    srbench("profile", "paper", cwd=root)  # the documented switch
    assert (root / "params.yaml").read_text() == (REPO / "profiles" / "paper.yaml").read_text()
    write_checksums(root / "SUMS", archives)  # the fakes' checksums replace the published ones
    with serve(served) as server:
        mirrors = {"div2k_mirror": server.url, "benchmark_mirror": server.url, "checksums": "SUMS", "cache_dir": str(tmp_path / "cache")}
        params = merge(yaml.safe_load((root / "params.yaml").read_text()), {"data": mirrors, **TINY_BUDGET})
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert ran_stages(dvc("repro", cwd=root)) == STAGES
        assert sorted(set(server.names())) == sorted(archive.name for archive in archives)

    for model in MODELS:
        assert json.loads((root / "metrics" / "train" / "seed0" / f"{model}.json").read_text())["steps"] == 1  # the budget scaled 10^5.. steps to 1
    metrics = json.loads((root / "results" / "seed0" / "vdsr" / "metrics.json").read_text())
    assert list(metrics) == ["valid", "Set5", "Set14", "B100", "Urban100"]  # numbers only: the LPIPS status is in evaluation.json
    headline = json.loads((root / "metrics" / "eval" / "seed0" / "vdsr.json").read_text())
    assert headline == {name: {"psnr_y": values["psnr_y"], "ssim_y": values["ssim_y"]} for name, values in metrics.items()}
    assert metrics["Urban100"]["n_images"] == 2 and metrics["valid"]["n_images"] == 2
    report = (root / "reports" / "report.md").read_text()
    for heading in ("## DIV2K validation (0801, 0802), x4", "## Set5, x4", "## Set14, x4", "## B100, x4", "## Urban100, x4"):
        assert heading in report
    set5 = report.split("## Set5, x4")[1].split("##")[0]
    assert "| bicubic |" in set5 and "| 28.42 / 0.8104 |" in set5 and "| 29.40 / 0.8472 |" in set5  # published, beside the measured
    assert "not measured here" in report
