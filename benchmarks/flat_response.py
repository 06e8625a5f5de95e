"""What each model does to a flat field: an image of one colour must come back as that colour.

    python benchmarks/flat_response.py [--models srcnn vdsr srresnet srgan] [--weights NAME=PATH ...]
                                       [--size 160] [--md OUT.md]

Each model upscales LR images of one uniform colour (twelve greys from black to white and four
saturated colours); the script prints the mean output minus the input colour in grey levels (0-255, before
rounding to 8 bits) per channel, measured in the centre of the output, away from the zero padding
of the borders. Bicubic returns a flat field exactly, so every non-zero number is the model's own:
a brightness offset that depends on the grey level, or a tint. Such offsets are invisible in a
textured photograph's PSNR and decide it on a smooth one (sky, fog, blurred backgrounds: bicubic is
within half a grey level there), which is why `benchmarks/unseen_photos.py`'s smooth folders need
this probe beside them. No photograph is needed: a model that tints or shifts a flat field has
learnt the offset, whatever the data.
"""

import argparse
import sys
from pathlib import Path

import torch

GREYS = (0, 8, 16, 40, 64, 96, 128, 160, 192, 216, 235, 255)  # black and white too: SRCNN's worst offsets are at black
COLOURS = {"red": (200, 40, 40), "green": (40, 160, 40), "blue": (40, 40, 200), "yellow": (230, 200, 30)}


def flat_fields() -> dict[str, tuple[int, int, int]]:
    """Name -> RGB colour of every probe: the greys, then :data:`COLOURS`."""
    return {f"grey {level}": (level, level, level) for level in GREYS} | COLOURS


@torch.no_grad()
def response(model: torch.nn.Module, scale: int, colour: tuple[int, int, int], size: int) -> tuple[float, float, float]:
    """Mean SR minus ``colour`` per channel, in grey levels, over the centre half of the SR image of a
    ``size`` x ``size`` LR field of ``colour`` (float output, before rounding)."""
    lr = torch.tensor(colour, dtype=torch.float32).div(255).view(1, 3, 1, 1).expand(1, 3, size, size).contiguous()
    sr = model(lr).float()
    side = scale * size
    centre = sr[0, :, side // 4: side - side // 4, side // 4: side - side // 4]
    return tuple(float(value) for value in (centre.mean(dim=(1, 2)) * 255 - torch.tensor(colour, dtype=torch.float32)))


def measure(models: list[str], weights: dict[str, Path], size: int) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Model -> probe name -> (r, g, b) offset, for each model's weights (``models/seed0/NAME.pt`` by default)."""
    from srbench.models import load_model
    from unseen_photos import default_weights  # this script's folder is on sys.path

    results = {}
    for name in models:
        model, meta = load_model(weights.get(name, default_weights(name)), torch.device("cpu"))
        model.eval()
        results[name] = {probe: response(model, int(meta["scale"]), colour, size) for probe, colour in flat_fields().items()}
    return results


def markdown(results: dict[str, dict[str, tuple[float, float, float]]]) -> str:
    """One row per model: for each probe the channel offset furthest from 0, then the largest
    absolute offset of any channel and probe."""
    probes = list(flat_fields())
    lines = ["| Model | " + " | ".join(probes) + " | worst |", "|---|" + "---|" * (len(probes) + 1)]
    for name, offsets in results.items():
        cells = [f"{max(offsets[probe], key=abs):+.2f}" for probe in probes]
        worst = max((abs(v) for probe in probes for v in offsets[probe]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {worst:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["srcnn", "vdsr", "srresnet", "srgan"])
    parser.add_argument("--weights", nargs="*", default=[], help="NAME=PATH: a model file other than models/seed0/NAME.pt")
    parser.add_argument("--size", type=int, default=160, help="LR side of each flat field (its centre is measured)")
    parser.add_argument("--md", type=Path, default=None)
    args = parser.parse_args()
    if args.size < 16:
        parser.error(f"--size {args.size}: at least 16")
    from srbench.errors import SrbenchError
    from srbench.files import write_text
    from unseen_photos import weights_by_name  # this script's folder is on sys.path

    try:
        results = measure(args.models, weights_by_name(args.weights), args.size)
    except (SrbenchError, argparse.ArgumentTypeError) as error:
        sys.exit(f"error: {error}")
    text = ("Mean output minus input colour on flat fields (grey levels, the channel furthest from 0; "
            f"LR {args.size} px, centre half of the output):\n\n" + markdown(results))
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.md, text)
    print(text)


if __name__ == "__main__":
    main()
