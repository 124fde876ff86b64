"""scrna_embed: your own cells through a trained model's vocabulary, an .h5ad scanpy goes on with, its UMAPs."""

import anndata as ad
import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.scrna.embed import embed_cells, plot_umaps
from omicslm.scrna.ingest import ingest
from omicslm.scrna.train import train_model
from tests.scrna.conftest import counts_matrix, write_h5ad


@pytest.fixture
def trained(tmp_path, tokens):
    train_model(tokens, tmp_path / "m", work_dir=tmp_path / "w", name="tiny",
                model={"d_model": 16, "heads": 2, "ffn": 32, "layers": 1, "dropout": 0.0, "norm_first": True,
                       "proj_dim": 8},
                loss={"head": "ce", "mask_fraction": 0.2, "clip_weight": 0.1, "clip_temperature": 0.1},
                train={"max_epochs": 2, "lr": 3e-3, "warmup_steps": 1, "device": "cpu"}, batch_size=4,
                steps_per_epoch=4, max_val_cells=None, eval_mask_fraction=0.2, eval_seed=1)
    return tmp_path / "m" / "best"


def _new_cells(tmp_path, extra_genes=5):
    """New cells of the same two types (another seed) with genes the model never saw, and one cell of those only."""
    counts, cells, genes, labels = counts_matrix(n_cells=40, seed=7)
    rng = np.random.default_rng(1)
    extra = rng.poisson(2.0, size=(len(cells), extra_genes))
    only_new = np.zeros((1, counts.shape[1]), dtype=counts.dtype)
    counts = np.vstack([np.hstack([counts, extra]), np.hstack([only_new, np.full((1, extra_genes), 3)])])
    genes = genes + [f"NEW{j}" for j in range(extra_genes)]
    path = write_h5ad(tmp_path / "mine.h5ad", counts, cells + ["cell_new_only"], genes, [*labels, "typeA"])
    out = tmp_path / "mine_counts.h5ad"
    ingest(path, out, tmp_path / "mine_summary.json", label_column="cell_type", min_genes=0, min_cells=0)
    return out


def test_your_cells_get_the_models_embedding_beside_scanpys(tmp_path, tokens, trained):
    mine = _new_cells(tmp_path)
    adata = embed_cells(mine, trained, tokens, tmp_path / "out.h5ad", model_name="toy/tiny", batch_size=8,
                        pca_components=5, hvg_genes=2000, device="cpu",
                        scvi={"enabled": True, "n_latent": 3, "max_epochs": 10})
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    assert back.obsm["X_omicslm"].shape == (40, 16) and back.obsm["X_pca"].shape == (40, 5)
    assert back.obsm["X_scvi"].shape == (40, 3) and np.isfinite(back.obsm["X_scvi"]).all()  # scvi-tools' SCVI
    assert np.isfinite(back.obsm["X_omicslm"]).all() and back.n_obs == adata.n_obs
    assert "cell_new_only" not in back.obs_names  # no gene of the vocabulary: dropped and counted
    assert back.uns["omicslm"]["genes_not_in_vocab"] == 5 and back.uns["omicslm"]["cells_without_known_genes"] == 1
    assert back.uns["omicslm"]["model"] == "toy/tiny" and set(back.obs["label"]) == {"typeA", "typeB"}
    import scanpy as sc

    sc.pp.neighbors(back, use_rep="X_omicslm", n_neighbors=5)  # what a scanpy user does next
    assert back.obsp["connectivities"].shape == (40, 40)
    plot_umaps(tmp_path / "out.h5ad", tmp_path / "umap.png", n_neighbors=5)
    assert (tmp_path / "umap.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_genes_can_be_an_error(tmp_path, tokens, trained):
    mine = _new_cells(tmp_path)
    with pytest.raises(InputError, match="not in the saved vocabulary"):
        embed_cells(mine, trained, tokens, tmp_path / "out.h5ad", model_name="toy/tiny", on_unknown_gene="error",
                    device="cpu")
    assert not (tmp_path / "out.h5ad").exists()
