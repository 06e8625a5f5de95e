"""The names and defaults the command line shows, importable without torch or numpy (so that
`srbench --help` and usage errors answer at once): the models, the adversarially trained ones,
the scales, the benchmark sets, the upscaling tile, the keys of a training's cost."""

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

#: What a training cost, in its summary (metrics/train/seedN/MODEL.json): the training loop's and
#: the command's seconds, images seen, the loop's steps per second, the peak host memory (MiB);
#: on CUDA also the peak GPU memory (MiB) and the GPU-hours.
COST_KEYS = ("training_seconds", "wall_seconds", "images_seen", "steps_per_second", "peak_host_memory_mb")
CUDA_COST_KEYS = ("peak_gpu_memory_mb", "gpu_hours")
