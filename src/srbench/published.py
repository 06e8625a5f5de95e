"""Published Y-PSNR (dB) / Y-SSIM, for the report to print beside what was measured here.

Sources: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017, Table 6 (bicubic, SRCNN, VDSR; DIV2K is its validation set) and Ledig et al.,
"Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
CVPR 2017, Table 2 (SRResNet, SRGAN). All are MATLAB-bicubic LR images, luma of BT.601,
``scale`` pixels cropped at the border. Nothing here is measured by srbench.
"""

#: (test set, scale) -> model -> (Y-PSNR, Y-SSIM). "DIV2K" is DIV2K's validation split.
PUBLISHED: dict[tuple[str, int], dict[str, tuple[float, float]]] = {
    ("Set5", 2): {"bicubic": (33.66, 0.9299), "srcnn": (36.66, 0.9542), "vdsr": (37.53, 0.9587)},
    ("Set5", 4): {
        "bicubic": (28.42, 0.8104),
        "srcnn": (30.48, 0.8628),
        "vdsr": (31.35, 0.8838),
        "srresnet": (32.05, 0.9019),
        "srgan": (29.40, 0.8472),
    },
    ("Set14", 2): {"bicubic": (30.24, 0.8688), "srcnn": (32.42, 0.9063), "vdsr": (33.03, 0.9124)},
    ("B100", 2): {"bicubic": (29.56, 0.8431), "srcnn": (31.36, 0.8879), "vdsr": (31.90, 0.8960)},
    ("Urban100", 2): {"bicubic": (26.88, 0.8403), "srcnn": (29.50, 0.8946), "vdsr": (30.76, 0.9140)},
    ("DIV2K", 2): {"bicubic": (31.01, 0.9393), "srcnn": (33.05, 0.9581), "vdsr": (33.66, 0.9625)},
    ("DIV2K", 4): {"bicubic": (26.66, 0.8521), "srcnn": (27.78, 0.8753), "vdsr": (28.17, 0.8841)},
}

SOURCES = {
    "bicubic": "EDSR paper, Table 6",
    "srcnn": "EDSR paper, Table 6",
    "vdsr": "EDSR paper, Table 6",
    "srresnet": "SRGAN paper, Table 2",
    "srgan": "SRGAN paper, Table 2",
}


def published(test_set: str, scale: int, model: str) -> tuple[float, float] | None:
    """The published (Y-PSNR, Y-SSIM) of ``model`` on ``test_set`` at ``scale``, or None."""
    return PUBLISHED.get((test_set, scale), {}).get(model)
