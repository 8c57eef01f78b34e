"""Progress bars: tqdm when a person watches, silent in batch runs.

Every long loop in aulib takes its bar from :func:`tqdm` here. ``python -m aulib reproduce`` (papermill) and
the tests set ``AULIB_PROGRESS=0`` in the kernel's environment, so a saved notebook carries no stream of bar
updates; an interactive Jupyter session or a terminal gets the usual bar. ``AULIB_PROGRESS=1`` forces bars on.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm as _tqdm

ENV = "AULIB_PROGRESS"


def enabled() -> bool:
    """False when the environment says this is a batch run (``AULIB_PROGRESS=0``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def tqdm(*args, disable: bool = False, **kwargs):
    """``tqdm.auto.tqdm`` that is also disabled when :func:`enabled` is False."""
    return _tqdm(*args, disable=disable or not enabled(), **kwargs)
