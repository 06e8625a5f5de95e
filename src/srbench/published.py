"""Published Y-PSNR (dB) / Y-SSIM of bicubic upsampling, for the report to print beside what was
measured here; each model's own published numbers are in its :class:`srbench.models.spec.ModelSpec`
(srcnn's and vdsr's from the same table, srresnet's and srgan's from Ledig et al. 2017, Table 2).

Source: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW
2017, Table 6 (DIV2K is its validation set): MATLAB-bicubic LR images, luma of BT.601, ``scale``
pixels cropped at the border. Nothing here is measured by srbench.
"""

#: (test set, scale) -> bicubic's (Y-PSNR, Y-SSIM). "DIV2K" is DIV2K's validation split.
BICUBIC: dict[tuple[str, int], tuple[float, float]] = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("B100", 2): (29.56, 0.8431),
    ("Urban100", 2): (26.88, 0.8403),
    ("DIV2K", 2): (31.01, 0.9393),
    ("DIV2K", 4): (26.66, 0.8521),
}
BICUBIC_SOURCE = "EDSR paper, Table 6"
