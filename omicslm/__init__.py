"""omicslm: a Snakemake workflow that turns raw genomic and text data into trained
transformer models and honest evaluation reports.

All logic lives in this package; it never imports snakemake, so every step can be
called from a rule adapter, a test or a notebook with plain paths and keyword options.
"""

__version__ = "0.1.0"
