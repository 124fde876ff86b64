import json

import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.scrna.ingest import ingest, read_ingested, write_counts_h5ad
from omicslm.scrna.readers import detect_format
from tests.scrna.conftest import counts_matrix, write_10x_h5, write_csv, write_h5ad, write_mtx_dir


def _ingest(tmp_path, src, **kw):
    summary = ingest(src, tmp_path / "out.h5ad", tmp_path / "out.json", **kw)
    return read_ingested(tmp_path / "out.h5ad"), summary


@pytest.mark.parametrize("layout", ["h5ad", "csv", "mtx", "10x_h5"])
def test_every_layout_reads_the_same_counts(tmp_path, counts, layout):
    X, cells, genes, labels = counts
    writers = {"h5ad": lambda: write_h5ad(tmp_path / "m.h5ad", X, cells, genes),
               "csv": lambda: write_csv(tmp_path / "m.csv", X, cells, genes),
               "mtx": lambda: write_mtx_dir(tmp_path / "filtered_feature_bc_matrix", X, cells, genes),
               "10x_h5": lambda: write_10x_h5(tmp_path / "m.h5", X, cells, genes)}
    src = writers[layout]()
    assert detect_format(src) == layout
    adata, summary = _ingest(tmp_path, src)
    assert adata.X.dtype == np.int32
    np.testing.assert_array_equal(adata.X.toarray(), X)
    assert list(adata.obs_names) == cells and list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.obs["total_counts"], X.sum(1))
    assert summary["cells"] == len(cells) and summary["genes"] == len(genes)


def test_10x_gene_ids_and_transposed_csv(tmp_path, counts):
    X, cells, genes, _ = counts
    adata, _ = _ingest(tmp_path, write_10x_h5(tmp_path / "m.h5", X, cells, genes), gene_column="gene_ids")
    assert adata.var_names[0] == "ENSG00000"
    write_csv(tmp_path / "t.csv", X.T, genes, cells)
    adata, _ = _ingest(tmp_path, tmp_path / "t.csv", transpose=True)
    np.testing.assert_array_equal(adata.X.toarray(), X)


def test_labels_qc_and_subsampling_are_counted(tmp_path, counts):
    X, cells, genes, labels = counts
    X = X.copy()
    X[:, 5] = 0
    X[0, 5] = 3        # gene 5: two cells only -> below min_cells
    X[1] = 0
    X[1, 5] = 2        # cell 1 expresses only gene 5 -> no expressed gene left after gene QC
    rare = int(((X > 0).sum(0) < 3).sum())
    src = write_h5ad(tmp_path / "m.h5ad", X, cells, genes, labels)
    adata, summary = _ingest(tmp_path, src, label_column="cell_type", min_cells=3, min_genes=1)
    assert summary["genes_below_min_cells"] == rare and "G05" not in adata.var_names and adata.n_vars == 30 - rare
    assert summary["cells_without_expressed_genes"] == 1 and "cell001" not in adata.obs_names
    assert adata.n_obs == len(cells) - 1 and adata.obs["label"].iloc[0] == "typeA"
    assert json.loads((tmp_path / "out.json").read_text())["cells"] == len(cells) - 1
    adata, summary = _ingest(tmp_path, src, max_cells=20, seed=3)
    assert adata.n_obs == 20 and summary["cells_subsampled_away"] == len(cells) - 20


def test_lognormalized_input_is_rejected_naming_cell_and_gene(tmp_path, counts):
    X, cells, genes, _ = counts
    lognorm = np.log1p(X / X.sum(1, keepdims=True) * 1e4)
    src = write_h5ad(tmp_path / "m.h5ad", lognorm, cells, genes, as_float=True)
    with pytest.raises(InputError, match=r"cell 'cell000', gene 'G\d\d'.*non-integer value .*log-transformed"):
        _ingest(tmp_path, src)
    assert not (tmp_path / "out.h5ad").exists()


def test_lognorm_option_recovers_the_counts(tmp_path, counts):
    import anndata as ad

    X, cells, genes, _ = counts
    totals = X.sum(1)
    src = write_h5ad(tmp_path / "m.h5ad", np.log1p(X / totals[:, None] * 1e4), cells, genes, as_float=True)
    adata = ad.read_h5ad(src)
    adata.obs["n_counts"] = totals.astype(float)
    write_counts_h5ad(adata, src)
    out, _ = _ingest(tmp_path, src, lognorm={"total_column": "n_counts", "target_sum": 1e4}, integer_tolerance=0.1)
    np.testing.assert_array_equal(out.X.toarray(), X)


def test_negative_counts_are_rejected(tmp_path, counts):
    X, cells, genes, _ = counts
    X = X.copy()
    X[2, 3] = -1
    with pytest.raises(InputError, match=r"cell 'cell002', gene 'G03'.*negative value -1"):
        _ingest(tmp_path, write_csv(tmp_path / "m.csv", X, cells, genes))


@pytest.mark.parametrize("shape", [(0, 5), (4, 0)])
def test_empty_matrix_is_rejected(tmp_path, shape):
    X = np.zeros(shape, dtype=int)
    src = write_csv(tmp_path / "m.csv", X, [f"c{i}" for i in range(shape[0])], [f"g{j}" for j in range(shape[1])])
    with pytest.raises(InputError, match="empty matrix"):
        _ingest(tmp_path, src)


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_duplicate_gene_names_error_or_sum(tmp_path, counts):
    X, cells, genes, _ = counts
    genes = list(genes)
    genes[7] = genes[3]
    src = write_h5ad(tmp_path / "m.h5ad", X, cells, genes)
    with pytest.raises(InputError, match="1 duplicate gene name.*'G03' x2.*on_duplicate_genes: sum"):
        _ingest(tmp_path, src)
    adata, summary = _ingest(tmp_path, src, on_duplicate_genes="sum")
    assert summary["duplicate_gene_columns_merged"] == 1 and adata.n_vars == len(genes) - 1
    np.testing.assert_array_equal(adata[:, "G03"].X.toarray().ravel(), X[:, 3] + X[:, 7])


def test_unreadable_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _ingest(tmp_path, tmp_path / "missing.h5ad")
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(InputError, match="cannot tell the format"):
        _ingest(tmp_path, tmp_path / "notes.md")
    (tmp_path / "bad.csv").write_text("cell,g1,g2\nc1,1,x\n")
    with pytest.raises(InputError, match="not numeric"):
        _ingest(tmp_path, tmp_path / "bad.csv")


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _bad_inputs(tmp_path):
    """(name, path, what the message must say) of each bad input a user can hand the ingest step."""
    import gzip

    import h5py


    c, cells, genes, _ = counts_matrix()
    dup = cells[:-1] + [cells[0]]
    cases = [("dup.csv", write_csv(tmp_path / "dup.csv", c, dup, genes), "duplicate cell barcode"),
             ("dup_mtx", write_mtx_dir(tmp_path / "dup_mtx", c, dup, genes), "duplicate cell barcode"),
             ("dup.h5", write_10x_h5(tmp_path / "dup.h5", c, dup, genes), "duplicate cell barcode")]
    for name, member in (("trunc_mtx", "matrix.mtx.gz"), ("trunc_feat", "features.tsv.gz"),
                         ("trunc_bc", "barcodes.tsv.gz")):
        folder = write_mtx_dir(tmp_path / name, c, cells, genes)
        _truncate(folder / member)
        cases.append((name, folder, f"{member}: truncated or not gzip"))
    plain = write_mtx_dir(tmp_path / "plain_mtx", c, cells, genes)
    (plain / "matrix.mtx.gz").write_bytes(gzip.decompress((plain / "matrix.mtx.gz").read_bytes()))
    cases.append(("plain_mtx", plain, "matrix.mtx.gz: truncated or not gzip"))
    csv = write_csv(tmp_path / "x.csv", c, cells, genes)
    (tmp_path / "x.csv.gz").write_bytes(gzip.compress(csv.read_bytes())[:400])
    cases.append(("x.csv.gz", tmp_path / "x.csv.gz", "x.csv.gz: truncated or not gzip"))
    h5 = write_10x_h5(tmp_path / "noname.h5", c, cells, genes)
    with h5py.File(h5, "a") as f:
        del f["matrix/features/name"]
    cases.append(("noname.h5", h5, "lacks features/name"))
    return cases


def test_bad_inputs_are_clear_errors_naming_the_file_and_leave_nothing(tmp_path):
    for name, path, what in _bad_inputs(tmp_path):
        out = tmp_path / f"{name}.counts.h5ad"
        with pytest.raises(InputError) as e:
            ingest(path, out, tmp_path / f"{name}.json")
        assert what in str(e.value) and str(path.name) in str(e.value), (name, str(e.value))
        assert not out.exists(), name
