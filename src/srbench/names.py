"""The names the command line accepts, importable without torch (so that `srbench --help` and
usage errors answer at once): the models, the adversarially trained ones, the scales."""

#: The trainable models by the name used on the command line and in params.yaml: the papers'
#: networks and, with ``-seed``, the study's (Dias & Binkowski). ``srresnet`` and ``srgan`` are
#: the same generator, trained with MSE and then adversarially.
MODEL_NAMES = ("srcnn", "srcnn-seed", "vdsr", "vdsr-seed", "srresnet", "srgan", "srgan-seed")

#: The models trained adversarially.
GAN_MODELS = ("srgan", "srgan-seed")

#: The scales every model supports (SRResNet's sub-pixel blocks: one x3 block, or x2 blocks).
SCALES = (2, 3, 4)
