"""Genotype imputation branch: ingest, split, baselines, evaluation (and the model)."""
