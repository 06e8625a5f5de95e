"""The names and defaults the command line shows, importable without torch or numpy (so that
`srbench --help` and usage errors answer at once): the models, the adversarially trained ones,
the scales, the benchmark sets, the upscaling tile."""

#: The trainable models by the name used on the command line and in params.yaml: the papers'
#: networks and, with ``-seed``, the study's (Dias & Binkowski). ``srresnet`` and ``srgan`` are
#: the same generator, trained with MSE and then adversarially.
MODEL_NAMES = ("srcnn", "srcnn-seed", "vdsr", "vdsr-seed", "srresnet", "srgan", "srgan-seed")

#: The models trained adversarially.
GAN_MODELS = ("srgan", "srgan-seed")

#: The scales every model supports (SRResNet's sub-pixel blocks: one x3 block, or x2 blocks).
SCALES = (2, 3, 4)

#: The benchmark sets of EDSR's benchmark.tar that `srbench download` can add beside the validation split.
BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")

#: LR pixels per tile side (before the margin) in `srbench upscale`: a 64-feature network at x4
#: keeps well under 2 GB.
TILE = 192
