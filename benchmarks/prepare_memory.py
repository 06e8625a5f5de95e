"""Peak memory of `srbench.data.prepare` against the size of the patch store it writes.

    python benchmarks/prepare_memory.py [--images 24] [--side 1024] [--patch 256] [--stride 128]

Writes random HR images (DIV2K-like sizes by default) to a temporary folder, prepares them at x4
with two worker processes, and prints the patch store's size and how much the peak resident
memory of this process grew during prepare: the parent, which only assembles the store (the
workers decode and cut). The growth includes the store's pages written through the memory map
(file-backed, reclaimable), so streaming patches into the store gives a ratio near 1; holding
every patch in RAM first adds another store's worth.
"""

import argparse
import resource
import tempfile
from pathlib import Path

import numpy as np

from srbench.data import prepare
from srbench.images import write_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--stride", type=int, default=128)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw"
        for index in range(args.images):
            write_png(raw / "train" / "HR" / f"{index:04d}.png", rng.integers(0, 256, (args.side, args.side, 3), np.uint8))
        write_png(raw / "valid" / "HR" / "0801.png", rng.integers(0, 256, (64, 64, 3), np.uint8))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        meta = prepare(raw, Path(folder) / "prepared", scale=4, patch_size=args.patch, stride=args.stride, workers=2)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store = sum(path.stat().st_size for path in (Path(folder) / "prepared").glob("train_*.npy")) / 2**20
    print(f"{meta.train_patches} patches of {args.patch} px: store {store:.0f} MiB")
    print(f"peak RSS of the preparing process: {peak:.0f} MiB (before prepare: {before:.0f} MiB)")
    print(f"peak RSS growth / store size: {(peak - before) / store:.2f}")


if __name__ == "__main__":
    main()
