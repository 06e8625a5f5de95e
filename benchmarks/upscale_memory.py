"""Time and peak memory of `srbench upscale`, tiled against one whole-image pass.

    python benchmarks/upscale_memory.py [--model srcnn] [--scale 2] [--megapixels 3 12] [--whole 3]
    python benchmarks/upscale_memory.py --model bicubic --scale 4 --megapixels 12 --whole

For each size, a real photograph (scikit-image's astronaut, bicubic-resized to that many input
megapixels at 4:3) is upscaled in a fresh process by the model with the quick profile's
architecture (random weights: time and memory do not depend on them), or by bicubic
(``--model bicubic``), and the process's peak resident memory and wall time are printed.
``--whole`` sizes also run in one pass, untiled.
"""

import argparse
import json
import subprocess
import sys
import time

import yaml

CHILD = """
import json, resource, sys, time
import numpy as np, torch
from PIL import Image
from skimage import data
from srbench.inference import bicubic_upscaler, model_upscaler
from srbench.models import build_model
from srbench.tiling import tiled_bicubic, tiled_upscaler
model, scale, arch, megapixels, tiled = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "tiled"
width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
image = np.asarray(Image.fromarray(data.astronaut()).resize((width, width * 3 // 4), Image.BICUBIC))
network = None if model == "bicubic" else build_model(model, scale, arch).eval()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
started = time.perf_counter()
if network is None:
    upscale = tiled_bicubic(scale) if tiled else bicubic_upscaler(scale)
else:
    upscale = tiled_upscaler(network, torch.device("cpu"), scale) if tiled else model_upscaler(network, torch.device("cpu"))
sr = upscale(image)
assert sr.dtype == np.uint8
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({"input": f"{image.shape[1]}x{image.shape[0]}", "output_mp": sr.shape[0] * sr.shape[1] / 1e6, "seconds": seconds, "peak_gb": peak, "before_gb": before}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="srcnn")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[3, 12])
    parser.add_argument("--whole", type=float, nargs="*", default=[3])
    args = parser.parse_args()
    arch = None
    if args.model != "bicubic":
        with open("profiles/quick.yaml") as file:
            arch = yaml.safe_load(file)[args.model]["arch"]
    print(f"{args.model} x{args.scale}" + (f", arch {arch}" if arch else ""))
    runs = [(mp, "tiled") for mp in args.megapixels] + [(mp, "whole") for mp in args.whole]
    for megapixels, mode in runs:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", CHILD, args.model, str(args.scale), json.dumps(arch), str(megapixels), mode],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            print(f"{megapixels} MP {mode}: failed after {time.perf_counter() - started:.0f}s: {result.stderr.strip().splitlines()[-1]}")
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{megapixels:g} MP ({row['input']}) {mode}: {row['seconds']:.1f}s, peak RSS {row['peak_gb']:.2f} GB "
            f"(after imports {row['before_gb']:.2f} GB), output {row['output_mp']:.1f} MP"
        )


if __name__ == "__main__":
    main()
