"""Shared input/output helpers: atomic writes, VCF writing, logging."""
