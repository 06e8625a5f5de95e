"""The "download" stage's library: fetch DIV2K or the EDSR benchmark sets, or use bundled or
local images, into a raw data directory.

Layout written under ``out_dir``::

    train/HR/<name>.png
    valid/HR/<name>.png
    train/LR_bicubic/X<scale>/<name>.png   (DIV2K only: the official bicubic LR images)
    valid/LR_bicubic/X<scale>/<name>.png

The benchmark sets are written the same way, one folder per set: ``<Set>/HR/<name>.png`` and
``<Set>/LR_bicubic/X<scale>/<name>.png``.

Everything is first written to a temporary directory next to ``out_dir`` and renamed into place
at the end (:func:`srbench.files.staged_folder`), so a failure never leaves a half-written
``out_dir``.

- :mod:`srbench.download.transfer`: resumable, checksum-verified HTTP transfers and checksum files
- :mod:`srbench.download.archives`: safe extraction of zip and tar archives
- :mod:`srbench.download.catalogue`: the DIV2K and EDSR benchmark catalogues and their layout
- :mod:`srbench.download.local`: the photographs bundled with the installed packages and
  folders of images
"""
