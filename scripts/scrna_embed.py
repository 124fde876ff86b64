import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.scrna.embed import embed_cells, plot_umaps

setup_logging()
p = snakemake.params
if snakemake.rule == "scrna_embed_umap":
    plot_umaps(snakemake.input.h5ad, snakemake.output[0], n_neighbors=p.knn_k, seed=p.seed)
else:
    embed_cells(snakemake.input.h5ad, snakemake.input.best, snakemake.input.tokens, snakemake.output.h5ad,
                model_name=p.model, on_unknown_gene=p.on_unknown_gene, device=p.device, threads=snakemake.threads,
                **p.options)
