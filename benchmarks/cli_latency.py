"""How long `srbench` takes to answer --help, --version and usage errors (issue 10's goal: under
0.5 s; it was 4.2 s while the CLI imported torch up front), against importing torch alone.

    python benchmarks/cli_latency.py [--repeat 5]

Each command runs in a fresh process, ``--repeat`` times; the median wall time is printed, and
the ratio to ``python -c 'import torch'`` measured in the same run.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRBENCH = str(Path(sys.executable).parent / "srbench")
COMMANDS = [
    ["--help"],
    ["--version"],
    ["train", "--help"],
    ["evaluate", "--help"],
    ["upscale", "--help"],
    ["train"],
    ["train", "nosuchmodel"],
    ["evaluate", "nosuchmodel"],
    ["upscale", "photo.png", "--model", "nosuchmodel"],
]


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    torch_seconds = median_seconds([sys.executable, "-c", "import torch"], repeat)
    print(f"| command | median of {repeat} | / import torch |\n|---|---|---|")
    print(f"| `python -c 'import torch'` | {torch_seconds:.3f} s | 1.00 |")
    for args in COMMANDS:
        seconds = median_seconds([SRBENCH, *args], repeat)
        print(f"| `srbench {' '.join(args)}` | {seconds:.3f} s | {seconds / torch_seconds:.2f} |")


if __name__ == "__main__":
    main()
