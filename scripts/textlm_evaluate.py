import sys

sys.stderr = open(snakemake.log[0], "w")
from omicslm.io.logs import setup_logging
from omicslm.textlm.evaluate import evaluate_lm

setup_logging()
i, p, e = snakemake.input, snakemake.params, snakemake.params.evaluate
evaluate_lm(i.chunks, i.model, snakemake.output.tsv, objective=p.objective, name=snakemake.wildcards.tlm_model,
            train_summary=i.summary, max_blocks=e["max_blocks"], batch_size=e["batch_size"], prompt=e["prompt"],
            max_new_tokens=e["max_new_tokens"], top_k=e["top_k"], top_p=e["top_p"], fill_mask_texts=e["fill_mask"],
            top_n=e["top_n"], unigram_alpha=e["unigram_alpha"], mlm_probability=p.mlm_probability, seed=e["seed"],
            threads=snakemake.threads)
