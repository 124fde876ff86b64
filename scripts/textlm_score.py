import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.evaluate import score_texts

setup_logging()
i, p = snakemake.input, snakemake.params
score_texts(list(i.files), i.chunks, i.model, snakemake.output.tsv, objective=p.objective,
            name=snakemake.wildcards.tlm_model, dataset=snakemake.wildcards.tset, block_size=p.block_size,
            batch_size=p.batch_size, unigram_alpha=p.unigram_alpha, mlm_probability=p.mlm_probability, seed=p.seed,
            threads=snakemake.threads, encoding_errors=p.encoding_errors)
