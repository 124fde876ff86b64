"""Read a count matrix in any common single-cell layout into an AnnData (cells x genes, sparse).

Formats (``fmt="auto"`` picks by name):

* ``h5ad`` — AnnData file; ``matrix`` picks ``X``, ``raw`` (``.raw.X``) or ``layers/<name>``.
* ``zarr`` — AnnData zarr store (also the old layout of scanpy's ``10x-10k-subset.zarr``).
* ``mtx`` — 10x folder with ``matrix.mtx[.gz]`` (genes x cells), ``features.tsv[.gz]`` or
  ``genes.tsv[.gz]``, ``barcodes.tsv[.gz]``.
* ``10x_h5`` — Cell Ranger HDF5: v3 (``/matrix`` with ``features/``) or v2 (``/<genome>`` with
  ``genes`` / ``gene_names``). Only "Gene Expression" features of a v3 file are kept.
* ``csv`` — a table with cell ids in the first column and one column per gene (``.csv``, ``.tsv``,
  ``.txt``, optionally ``.gz``); ``transpose=True`` reads genes x cells.

Nothing here checks the values; :mod:`omicslm.scrna.ingest` does.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from omicslm.errors import InputError

log = logging.getLogger(__name__)

FORMATS = ("auto", "h5ad", "zarr", "mtx", "10x_h5", "csv")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def detect_format(path: str | os.PathLike) -> str:
    """The format of ``path`` from its name (a folder with a ``matrix.mtx[.gz]`` is ``mtx``)."""
    p = Path(path)
    name = p.name.lower()
    if p.is_dir() and not name.endswith(".zarr"):
        if any((p / f).is_file() for f in ("matrix.mtx", "matrix.mtx.gz")):
            return "mtx"
        raise InputError(p, "folder holds no matrix.mtx[.gz] (expected a 10x matrix folder or a .zarr store)")
    for fmt, suffixes in (("h5ad", (".h5ad",)), ("zarr", (".zarr",)), ("10x_h5", (".h5", ".hdf5")),
                          ("csv", _CSV_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    raise InputError(p, "cannot tell the format from the name; expected .h5ad, .zarr, .h5, .csv/.tsv "
                        "or a 10x folder with matrix.mtx (or set the format in config)")


def _anndata(X, cells, genes, obs: pd.DataFrame | None = None):
    import anndata as ad

    obs = pd.DataFrame(index=pd.Index(np.asarray(cells, dtype=object), dtype=object)) if obs is None else obs
    var = pd.DataFrame(index=pd.Index(np.asarray(genes, dtype=object), dtype=object))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are reported by ingest, not here
        return ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=var)


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.name.endswith(".gz") else open(path)


def _read_lines(path: Path) -> list[str]:
    """The non-blank lines of a (gzipped) text file; a truncated or non-gzip ``.gz`` is an InputError naming it."""
    try:
        with _open_text(path) as fh:
            return [line.rstrip("\n") for line in fh if line.strip()]
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(path, f"truncated or not gzip-compressed ({exc}); re-download or re-compress it") from None


def _first(folder: Path, names: tuple[str, ...]) -> Path:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise InputError(folder, f"none of {', '.join(names)} found")


def read_mtx_dir(folder: str | os.PathLike, *, gene_ids: bool = False):
    """A 10x matrix folder -> AnnData; genes named by symbol (column 2) or by id (column 1)."""
    folder = Path(folder)
    mtx = _first(folder, ("matrix.mtx.gz", "matrix.mtx"))
    feats = _first(folder, ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv"))
    barcodes = _first(folder, ("barcodes.tsv.gz", "barcodes.tsv"))
    with (gzip.open(mtx, "rb") if mtx.name.endswith(".gz") else open(mtx, "rb")) as fh:
        try:
            m = sp.csr_matrix(scipy.io.mmread(fh))
        except ValueError as exc:
            raise InputError(mtx, f"not a Matrix Market file ({exc})") from None
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(mtx, f"truncated or not gzip-compressed ({exc}); re-download or re-compress it") \
                from None
    rows = [line.split("\t") for line in _read_lines(feats)]
    cells = [line.strip() for line in _read_lines(barcodes)]
    if m.shape != (len(rows), len(cells)):
        raise InputError(mtx, f"matrix is {m.shape[0]} x {m.shape[1]} but {feats.name} has {len(rows)} genes and "
                              f"{barcodes.name} {len(cells)} barcodes (expected genes x cells)")
    if not rows or not cells:
        raise InputError(folder, f"empty matrix: {len(rows)} genes in {feats.name}, {len(cells)} barcodes")
    col = 0 if gene_ids or len(rows[0]) < 2 else 1
    if len(rows[0]) > 2:  # v3 features.tsv: id, name, feature type
        keep = np.array([r[2] == "Gene Expression" for r in rows])
        m, rows = m[keep], [r for r, k in zip(rows, keep) if k]
    return _anndata(m.T.tocsr(), cells, [r[col] for r in rows])


def _text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_10x_h5(path: str | os.PathLike, *, gene_ids: bool = False):
    """A Cell Ranger ``.h5`` (v2 or v3) -> AnnData."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not an HDF5 file ({exc})") from None
    with f:
        if "matrix" in f:
            g = f["matrix"]
            need = ["data", "indices", "indptr", "shape", "barcodes", "features/id" if gene_ids else "features/name"]
            absent = [k for k in need if k not in g]
            if absent:
                raise InputError(path, f"10x HDF5 /matrix lacks {', '.join(absent)} (a Cell Ranger v3 file has them)")
            names = _text(g["features/id"][:] if gene_ids else g["features/name"][:])
            kind = _text(g["features/feature_type"][:]) if "feature_type" in g["features"] else None
        elif len(f.keys()) >= 1 and all(isinstance(f[k], h5py.Group) for k in f):
            genome = next(iter(f))
            g, kind = f[genome], None
            names = _text(g["genes"][:] if gene_ids else g["gene_names"][:])
        else:
            raise InputError(path, "not a 10x HDF5 file: no /matrix group (v3) nor a genome group (v2)")
        n_genes, n_cells = (int(x) for x in g["shape"][:])
        # stored as CSC of genes x cells, which is CSR of cells x genes
        X = sp.csr_matrix((g["data"][:], g["indices"][:], g["indptr"][:]), shape=(n_cells, n_genes))
        cells = _text(g["barcodes"][:])
    if kind is not None:
        keep = np.array([k == "Gene Expression" for k in kind])
        X, names = X[:, keep], [n for n, k in zip(names, keep) if k]
    return _anndata(X, cells, names)


def read_csv(path: str | os.PathLike, *, transpose: bool = False):
    """A cells x genes table (first column = cell ids; ``transpose``: genes x cells) -> AnnData."""
    path = Path(path)
    sep = "\t" if ".tsv" in path.name.lower() else ","
    try:
        table = pd.read_csv(path, sep=sep, index_col=0)  # the C engine: 3x faster than pyarrow on 32k columns
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(path, f"truncated or not gzip-compressed ({exc}); re-download or re-compress it") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot parse as a table with a header row and ids in the first column ({exc})") \
            from None
    if transpose:
        table = table.T
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise InputError(path, f"empty matrix: {table.shape[0]} cells x {table.shape[1]} genes")
    values = table.to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        bad = next(c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c]))
        raise InputError(path, "a column is not numeric: counts must be numbers", record=f"column {bad!r}")
    return _anndata(sp.csr_matrix(values.astype(np.float64)), table.index.astype(str), table.columns.astype(str))


def _from_anndata(adata, path: Path, matrix: str, gene_column: str | None):
    if matrix == "X":
        X, var = adata.X, adata.var
    elif matrix == "raw":
        if adata.raw is None:
            raise InputError(path, "matrix: raw asked for, but the file has no .raw")
        X, var = adata.raw.X, adata.raw.var
    elif matrix.startswith("layers/"):
        name = matrix.split("/", 1)[1]
        if name not in adata.layers:
            raise InputError(path, f"no layer {name!r} (layers: {', '.join(adata.layers) or 'none'})")
        X, var = adata.layers[name], adata.var
    else:
        raise InputError(path, f"matrix must be X, raw or layers/<name>, got {matrix!r}")
    if gene_column is None:
        genes = var.index
    elif gene_column in var.columns:
        genes = var[gene_column]
    else:
        raise InputError(path, f"no var column {gene_column!r} for gene names (columns: {', '.join(var.columns)})")
    obs = adata.obs.copy()
    obs.index = pd.Index(np.asarray(obs.index, dtype=object), dtype=object)
    return _anndata(sp.csr_matrix(X), obs.index, np.asarray(genes).astype(str), obs=obs)


def read_anndata(path: str | os.PathLike, *, fmt: str, matrix: str = "X", gene_column: str | None = None):
    """An ``.h5ad`` or ``.zarr`` AnnData -> AnnData with the chosen matrix as ``X`` (obs kept)."""
    import anndata as ad

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old-format and duplicate-name warnings of anndata; ingest reports
        try:
            adata = ad.read_h5ad(path) if fmt == "h5ad" else ad.read_zarr(path)
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"cannot read as {fmt} ({exc})") from None
    return _from_anndata(adata, path, matrix, gene_column)


def read_counts(path: str | os.PathLike, *, fmt: str = "auto", matrix: str = "X", gene_column: str | None = None,
                transpose: bool = False):
    """Read any supported layout (see the module docstring) into an AnnData, values unchecked.

    Parameters
    ----------
    path : path
        File or folder.
    fmt : str
        One of :data:`FORMATS`.
    matrix : str
        AnnData inputs: ``X``, ``raw`` or ``layers/<name>``.
    gene_column : str, optional
        AnnData inputs: var column naming the genes (default: the var index). 10x inputs:
        ``"gene_ids"`` names genes by id, anything else by symbol.
    transpose : bool
        CSV inputs laid out genes x cells.

    Returns
    -------
    anndata.AnnData
        ``X`` sparse CSR, shape (n_cells, n_genes).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "input does not exist")
    if fmt not in FORMATS:
        raise InputError(path, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    log.info("reading %s as %s", path, fmt)
    if fmt in ("h5ad", "zarr"):
        return read_anndata(path, fmt=fmt, matrix=matrix, gene_column=gene_column)
    if fmt == "mtx":
        return read_mtx_dir(path, gene_ids=gene_column == "gene_ids")
    if fmt == "10x_h5":
        return read_10x_h5(path, gene_ids=gene_column == "gene_ids")
    return read_csv(path, transpose=transpose)


def counts_from_lognorm(X: sp.csr_matrix, totals: np.ndarray, *, target_sum: float) -> sp.csr_matrix:
    """Invert ``log1p(counts / total * target_sum)`` given each cell's original total count.

    scanpy's ``pbmc68k_reduced`` keeps only such values in ``.raw`` (and the totals in
    ``obs['n_counts']``); the result is checked for integrality by ingest like any input.

    Parameters
    ----------
    X : sparse, shape (n_cells, n_genes)
    totals : ndarray, shape (n_cells,)
    """
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    scale = np.repeat(np.asarray(totals, dtype=np.float64) / float(target_sum), np.diff(X.indptr))
    X.data = np.expm1(X.data) * scale
    return X
