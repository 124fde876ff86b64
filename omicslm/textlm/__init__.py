"""Text language-model branch: corpus -> GPT-2 BPE tokens -> fixed-size blocks -> GPT-2 / RoBERTa -> evaluation.

Each stage is a plain function of paths and keyword options (one Snakemake rule each); every
artefact folder is written with :func:`omicslm.io.atomic.atomic_dir`, so a failed step leaves none.
"""
