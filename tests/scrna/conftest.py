"""Tiny single-cell fixtures: a structured count matrix (two cell types) written in every supported layout."""

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

N_CELLS, N_GENES = 60, 30


def counts_matrix(n_cells: int = N_CELLS, n_genes: int = N_GENES, seed: int = 0):
    """Counts of two cell types with opposite marker genes; cell sizes vary tenfold."""
    rng = np.random.default_rng(seed)
    kind = np.arange(n_cells) % 2
    base = rng.gamma(1.0, 1.0, size=n_genes)
    markers = np.where(np.arange(n_genes)[None, :] % 2 == kind[:, None], 4.0, 0.25)
    size = rng.uniform(1.0, 10.0, size=n_cells)[:, None]
    counts = rng.poisson(base * markers * size).astype(np.int64)
    counts[:, 0] = np.maximum(counts[:, 0], 1)  # no cell without expressed genes
    cells = [f"cell{i:03d}" for i in range(n_cells)]
    genes = [f"G{j:02d}" for j in range(n_genes)]
    labels = np.where(kind == 0, "typeA", "typeB")
    return counts, cells, genes, labels


def write_h5ad(path, counts, cells, genes, labels=None, *, as_float=False):
    from omicslm.scrna.ingest import write_counts_h5ad
    import anndata as ad

    obs = pd.DataFrame(index=pd.Index(cells, dtype=object))
    if labels is not None:
        obs["cell_type"] = pd.Categorical(np.asarray(labels, dtype=object))
    X = sp.csr_matrix(np.asarray(counts, dtype=np.float32 if as_float else np.int64))
    write_counts_h5ad(ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(genes, dtype=object))), path)
    return path


def write_csv(path, counts, cells, genes):
    pd.DataFrame(np.asarray(counts), index=pd.Index(cells, name="cell"), columns=genes).to_csv(path)
    return path


def write_mtx_dir(folder, counts, cells, genes):
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(np.asarray(counts).T))
    with gzip.open(folder / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"ENSG{j:05d}\t{g}\tGene Expression\n" for j, g in enumerate(genes))
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
        fh.writelines(c + "\n" for c in cells)
    return folder


def write_10x_h5(path, counts, cells, genes):
    import h5py

    m = sp.csc_matrix(np.asarray(counts).T)  # genes x cells, CSC = cells x genes CSR
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = m.data.astype(np.int32), m.indices, m.indptr
        g["shape"] = np.array(m.shape, dtype=np.int32)
        g["barcodes"] = np.array(cells, dtype="S")
        feats = g.create_group("features")
        feats["id"] = np.array([f"ENSG{j:05d}" for j in range(len(genes))], dtype="S")
        feats["name"] = np.array(genes, dtype="S")
        feats["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
    return path


@pytest.fixture
def counts():
    return counts_matrix()


@pytest.fixture
def ingested(tmp_path, counts):
    """An ingested counts.h5ad with labels (QC off)."""
    from omicslm.scrna.ingest import ingest

    src = write_h5ad(tmp_path / "raw.h5ad", *counts)
    out = tmp_path / "counts.h5ad"
    ingest(src, out, tmp_path / "summary.json", label_column="cell_type")
    return out


@pytest.fixture
def tokens(tmp_path, ingested):
    """A tokenized data set (clip binning, 2 views x 16 genes)."""
    from omicslm.scrna.tokenize import tokenize

    out = tmp_path / "tokens"
    tokenize(ingested, out, binning={"method": "clip", "clip_max": 9}, seq_len=16, views=2, max_zero_fraction=0.25,
             split={"validation_fraction": 0.2, "test_fraction": 0.2, "seed": 0}, seed=0)
    return out
