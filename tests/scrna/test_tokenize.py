import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.scrna.binning import bin_cell, n_bins, quantile_bins
from omicslm.scrna.tokenize import PAD, PAD_BIN, Vocab, load_tokenized, select_genes, split_cells, tokenize

SPLIT = {"validation_fraction": 0.2, "test_fraction": 0.2, "seed": 0}


def test_clip_binning_is_the_seeds_vocabulary_of_100():
    binning = {"method": "clip", "clip_max": 99}
    assert n_bins(binning) == 100
    np.testing.assert_array_equal(bin_cell(np.array([0, 1, 98, 99, 100, 5000]), 5298, binning), [0, 1, 98, 99, 99, 99])


def test_quantile_bins_are_per_cell_ranks():
    values = np.array([0.0, 0.5, 0.5, 1.0, 2.0, 3.0, 4.0, 0.0])
    bins = quantile_bins(values, 5)
    assert bins[0] == bins[-1] == 0                       # zero stays bin 0
    assert bins[1] == bins[2] == 1                        # smallest non-zero (ties included) -> bin 1
    assert bins[6] == 4                                   # largest -> n_bins - 1
    assert np.all(np.diff(bins[1:7]) >= 0)                # monotone in the value
    # depth-free: a cell with every count doubled gets the same bins
    counts = np.array([0, 1, 3, 7, 20])
    q = {"method": "quantile", "n_bins": 11, "target_sum": 1e4}
    np.testing.assert_array_equal(bin_cell(counts, counts.sum(), q), bin_cell(2 * counts, 2 * counts.sum(), q))


def test_gene_selection_takes_expressed_genes_first_then_some_zeros():
    rng = np.random.default_rng(0)
    expressed = np.array([3, 7, 11])
    cols, n_nz = select_genes(expressed, 50, seq_len=8, max_zero_fraction=0.25, rng=rng)
    assert n_nz == 3 and set(cols[:3]) == {3, 7, 11}
    assert len(cols) == 5 and not set(cols[3:]) & {3, 7, 11}   # 0.25 x 8 = 2 zeros
    cols, n_nz = select_genes(expressed, 50, seq_len=8, max_zero_fraction=0.0, rng=rng)
    assert n_nz == 3 and len(cols) == 3
    many = np.arange(0, 40, 2)
    cols, n_nz = select_genes(many, 50, seq_len=8, max_zero_fraction=1.0, rng=rng)
    assert n_nz == 8 and len(set(cols)) == 8 and set(cols) <= set(many)   # a random subset of expressed genes


def test_split_is_seeded_and_disjoint():
    a = split_cells(100, validation_fraction=0.1, test_fraction=0.2, seed=1)
    assert (a == "test").sum() == 20 and (a == "validation").sum() == 10
    np.testing.assert_array_equal(a, split_cells(100, validation_fraction=0.1, test_fraction=0.2, seed=1))
    with pytest.raises(ValueError, match="no training cell"):
        split_cells(2, validation_fraction=0.4, test_fraction=0.4, seed=0)


def test_tokenized_dataset_layout(tokens, counts):
    X, cells, genes, labels = counts
    data = load_tokenized(tokens)
    assert data.genes.shape == data.bins.shape == data.expr.shape == (len(cells), 2, 16)
    assert data.meta["n_bins"] == 10 and data.meta["vocab_size"] == len(genes) + 1
    assert data.meta["split_counts"] == {"train": 36, "validation": 12, "test": 12}
    pad = data.genes == PAD
    assert np.all(data.bins[pad] == PAD_BIN) and np.all(data.bins[~pad] >= 0)
    # every token's bin is its cell's count, clipped at 9
    for r in range(len(cells)):
        i = cells.index(data.cells["cell"][r])
        for v in range(2):
            g = data.genes[r, v][data.genes[r, v] != PAD] - 1
            np.testing.assert_array_equal(data.bins[r, v][: len(g)], np.minimum(X[i, g], 9))
            assert len(set(g)) == len(g)
    assert not np.array_equal(data.genes[:, 0], data.genes[:, 1])   # the two views are independent draws
    assert set(data.cells["label"]) == set(labels)


def test_saved_vocabulary_skips_or_rejects_unknown_genes(tmp_path, ingested, counts):
    vocab = tmp_path / "vocab.tsv"
    Vocab(counts[2][:20] + ["OTHER"]).write(vocab)   # lacks genes G20..G29
    meta = tokenize(ingested, tmp_path / "t", binning={"method": "clip", "clip_max": 9}, seq_len=8, views=1,
                    max_zero_fraction=0.0, split=SPLIT, seed=0, vocab=vocab)
    assert meta["genes_not_in_vocab"] == 10 and meta["vocab_size"] == 22
    data = load_tokenized(tmp_path / "t")
    assert data.genes.max() <= 20 and (tmp_path / "t" / "vocab.tsv").read_text() == vocab.read_text()
    with pytest.raises(InputError, match="10 of 30 genes are not in the saved vocabulary.*G20"):
        tokenize(ingested, tmp_path / "t2", binning={"method": "clip", "clip_max": 9}, seq_len=8, views=1,
                 max_zero_fraction=0.0, split=SPLIT, seed=0, vocab=vocab, on_unknown_gene="error")
    assert not (tmp_path / "t2").exists()


def test_cells_without_known_genes_are_skipped_and_counted(tmp_path, counts):
    from omicslm.scrna.ingest import ingest
    from tests.scrna.conftest import write_h5ad

    X, cells, genes, _ = counts
    X = X.copy()
    X[1] = 0
    X[1, 5] = 4                                   # cell001 expresses only G05
    ingest(write_h5ad(tmp_path / "m.h5ad", X, cells, genes), tmp_path / "c.h5ad", tmp_path / "c.json")
    vocab = tmp_path / "vocab.tsv"
    Vocab([g for g in genes if g != "G05"]).write(vocab)
    meta = tokenize(tmp_path / "c.h5ad", tmp_path / "t", binning={"method": "clip", "clip_max": 9}, seq_len=4,
                    views=1, max_zero_fraction=0.0, split=SPLIT, seed=0, vocab=vocab)
    assert meta["cells_without_known_genes"] == 1 and meta["cells"] == len(cells) - 1
    assert "cell001" not in set(load_tokenized(tmp_path / "t").cells["cell"])
    Vocab(["NOT_A_GENE"]).write(vocab)
    with pytest.raises(InputError, match="no cell expresses any gene of the vocabulary"):
        tokenize(tmp_path / "c.h5ad", tmp_path / "t3", binning={"method": "clip", "clip_max": 9}, seq_len=4,
                 views=1, max_zero_fraction=0.0, split=SPLIT, seed=0, vocab=vocab)


def test_hvg_vocabulary_is_scanpys_selection_and_skips_the_rest(tmp_path, ingested, counts):
    import scanpy as sc

    from omicslm.scrna.ingest import read_ingested

    genes = counts[2]
    meta = tokenize(ingested, tmp_path / "t", binning={"method": "clip", "clip_max": 9}, seq_len=8, views=1,
                    max_zero_fraction=0.0, split=SPLIT, seed=0, hvg_genes=10, on_unknown_gene="error")
    # what a scanpy user selects before PCA, on all cells: normalize_total, log1p, seurat-flavour HVGs
    ad = read_ingested(ingested)
    ad.X = ad.X.astype(np.float32)
    sc.pp.normalize_total(ad, target_sum=1e4)
    sc.pp.log1p(ad)
    sc.pp.highly_variable_genes(ad, n_top_genes=10, flavor="seurat")
    expected = [g for g, hv in zip(genes, ad.var["highly_variable"]) if hv]
    vocab = (tmp_path / "t" / "vocab.tsv").read_text().split()
    assert vocab == expected and 10 <= len(vocab) < 30   # in the input's gene order (scanpy keeps ties at the cut)
    assert meta["vocab_size"] == len(vocab) + 1 and meta["genes_not_in_vocab"] == 30 - len(vocab)
    assert meta["hvg_genes"] == 10
    data = load_tokenized(tmp_path / "t")
    assert 0 < data.genes.max() <= len(vocab) and meta["cells"] == len(counts[1])
    # at least as many HVGs asked as there are genes: the input's own vocabulary
    meta = tokenize(ingested, tmp_path / "t2", binning={"method": "clip", "clip_max": 9}, seq_len=8, views=1,
                    max_zero_fraction=0.0, split=SPLIT, seed=0, hvg_genes=30)
    assert meta["vocab_size"] == 31 and meta["genes_not_in_vocab"] == 0
