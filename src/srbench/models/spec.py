"""What srbench knows about a trainable model, declared next to its network: :class:`ModelSpec`.

Each model module ends with one spec per model it defines (``SRCNN_SPEC`` in srcnn.py, ...), and
srbench finds them through the ``srbench.models`` entry-point group (pyproject.toml), the same
way it finds a model from another package (docs/extending.md, "Add a model")."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

#: The channel space a model is trained in (``MODEL.channels``): ``rgb``, RGB to RGB; ``y``, the
#: BT.601 luma to luma, with Cb and Cr bicubic (:class:`srbench.models.luma.LumaSR`).
CHANNELS = ("rgb", "y")

#: Content losses of an adversarial training (``MODEL.content_loss``): pixel MSE or the MSE of VGG19
#: features after conv i_j (Ledig et al. 2017, Table 1: SRGAN-MSE, -VGG22, -VGG54; vgg34: the study's).
CONTENT_LOSSES = ("mse", "vgg22", "vgg34", "vgg54")


@dataclass(frozen=True)
class Hyperparameter:
    """What an architecture hyperparameter accepts: values of ``kind`` (an int is not a bool, a
    float may be written as an int), from ``minimum`` to ``maximum``, odd, among ``choices``, or a
    hyphen-separated list of ``parts`` including ``required``. ``layers``: the count of layers
    or blocks, each of which adds tensors to the weights."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    odd: bool = False
    choices: tuple[Any, ...] = ()
    parts: tuple[str, ...] = ()
    required: str = ""
    layers: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None."""
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return "expected a finite number"
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return "expected an integer"
        elif not isinstance(value, self.kind):
            return "expected true or false" if self.kind is bool else "expected a string"
        if self.choices and value not in self.choices:
            return f"choose one of {', '.join(map(str, self.choices))}"
        if self.parts:
            unknown = [part for part in value.split("-") if part not in self.parts]
            if unknown:
                return f"unknown layer {unknown[0]!r} (a hyphen-separated list of {', '.join(self.parts)})"
            if self.required not in value.split("-"):
                return f"needs at least one {self.required}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum}"
        if self.odd and value % 2 == 0:
            return "must be odd (a padded convolution with an even kernel changes the image size)"
        return None


#: Rules several families share: a layer's width, a convolution's (odd) kernel, a count of
#: residual blocks (0: the trunk's skip alone), a LeakyReLU slope (the in-place backward refuses
#: a negative one), an on/off switch. The upper bounds are far above any published network's
#: (EDSR: 256 features, RCAN: 200 blocks) and keep a typo from allocating for minutes.
WIDTH = Hyperparameter(int, minimum=1, maximum=4096)
KERNEL = Hyperparameter(int, minimum=1, maximum=63, odd=True)
BLOCKS = Hyperparameter(int, minimum=0, maximum=1024, layers=True)
LAYERS = Hyperparameter(int, minimum=2, maximum=1024, layers=True)
SLOPE = Hyperparameter(float, minimum=0)
SWITCH = Hyperparameter(bool)


@dataclass(frozen=True)
class ModelSpec:
    """A trainable model as the pipeline sees it.

    - ``name``: its name on the command line, in params.yaml (its section) and in dvc.yaml.
    - ``network``: a class (or function) called as ``network(scale=, num_channels=, **arch)``;
      takes LR images in [0, 1] (N, C, H, W) and returns SR images ``scale`` times larger.
    - ``hyperparameters``: every keyword of ``network`` but ``scale`` and ``num_channels``, with
      what it accepts (``MODEL.arch`` is checked against it before any work starts).
    - ``paper``: where the architecture and recipe come from (shown in the report's notes).
    - ``channels``: the channel spaces it can be trained in (:data:`CHANNELS`).
    - ``discriminator``: None for a model trained on a pixel loss (``MODEL.loss_scale`` x MSE);
      for an adversarial one, the discriminator for a given HR crop size, and ``content_losses``
      the content losses it accepts (``MODEL.content_loss``, non-empty); it trains on ``rgb`` alone.
    - ``starts_from``: the model whose trained weights (and architecture, and channels) its
      training continues from, passed as ``srbench train NAME --init``; None: from scratch.
    - ``published``: (test set, scale) -> (Y-PSNR, Y-SSIM) printed beside the measured numbers
      (test sets: Set5, Set14, B100, Urban100, DIV2K for its validation split), from
      ``published_source``.
    """

    name: str
    network: Callable[..., nn.Module]
    hyperparameters: Mapping[str, Hyperparameter]
    paper: str
    channels: tuple[str, ...] = CHANNELS
    discriminator: Callable[[int], nn.Module] | None = None
    content_losses: tuple[str, ...] = ()
    starts_from: str | None = None
    published: Mapping[tuple[str, int], tuple[float, float]] = field(default_factory=dict)
    published_source: str = ""

    def __post_init__(self) -> None:
        if unknown := [channels for channels in self.channels if channels not in CHANNELS]:
            raise ValueError(f"{self.name}: channels {unknown[0]!r}: choose from {', '.join(CHANNELS)}")
        if self.discriminator is not None and self.channels != ("rgb",):
            raise ValueError(f"{self.name}: an adversarial model trains on rgb alone (its discriminator judges colour images)")
        if self.discriminator is not None and (not self.content_losses or not set(self.content_losses) <= set(CONTENT_LOSSES)):
            raise ValueError(f"{self.name}: content_losses {self.content_losses!r}: a non-empty subset of {', '.join(CONTENT_LOSSES)}")
        if self.published and not self.published_source:
            raise ValueError(f"{self.name}: published numbers need their published_source")

    def channels_problem(self, channels: str) -> str | None:
        """Why this model cannot train in ``channels``, or None."""
        if channels in self.channels:
            return None
        why = " (its discriminator judges colour images)" if self.adversarial else ""
        return f"{self.name} trains on {' or '.join(self.channels)}{why}"

    @property
    def adversarial(self) -> bool:
        """Whether it is trained against a discriminator (else on a pixel loss)."""
        return self.discriminator is not None
