"""The population panel file beside a phased VCF: which samples to ingest and their populations.

:func:`read_population_panel` reads a 1000 Genomes style ``sample pop super_pop [gender]`` file,
:func:`match_samples` keeps the VCF's samples that it lists, and :class:`Populations` indexes the kept
samples' populations and sums ALT alleles per population. :mod:`omicslm.impute.ingest` uses all three.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from omicslm.errors import InputError

log = logging.getLogger(__name__)

PANEL_COLUMNS = ("sample", "pop", "super_pop", "gender")
#: Columns a panel file must have; ``gender`` is optional (autosomes do not need it).
PANEL_REQUIRED = ("sample", "pop", "super_pop")


def read_population_panel(path: str | os.PathLike) -> pd.DataFrame:
    """Read a 1000 Genomes style population panel file.

    The file has a header line ``sample pop super_pop gender`` and one row per sample,
    separated by tabs or spaces (the 1000 Genomes file has trailing empty columns,
    which are ignored).

    Parameters
    ----------
    path : path-like
        e.g. ``integrated_call_samples_v3.20130502.ALL.panel``.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample, pop, super_pop, gender`` (all str), one row per sample, in
        file order. A missing ``gender`` column is filled with ``"unknown"``.

    Raises
    ------
    InputError
        Missing file, missing required columns (named), empty values, duplicate samples.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "population panel file not found")
    try:
        df = pd.read_csv(path, sep=r"\s+", dtype=str, comment=None, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(path, f"population panel file is not UTF-8 text ({e.reason} at byte {e.start}); "
                               "save it as UTF-8 (e.g. iconv -t utf-8)") from None
    except pd.errors.EmptyDataError:
        raise InputError(path, "population panel file is empty") from None
    except pd.errors.ParserError as e:
        raise InputError(path, f"cannot parse population panel file: {e}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in PANEL_REQUIRED if c not in df.columns]
    if missing:
        raise InputError(
            path,
            f"population panel file lacks column(s) {', '.join(missing)}; its header must be "
            f"'{' '.join(PANEL_COLUMNS)}' (found: {' '.join(df.columns)})",
        )
    if "gender" not in df.columns:
        df["gender"] = "unknown"
    df = df[list(PANEL_COLUMNS)].copy()
    if df.empty:
        raise InputError(path, "population panel file has a header but no samples")
    for col in PANEL_REQUIRED:
        empty = df[col].isna()
        if empty.any():
            row = int(np.flatnonzero(empty.to_numpy())[0])
            # +2: one for the header line, one because people count lines from 1
            raise InputError(path, f"empty '{col}' value", record=f"line {row + 2}")
    df["gender"] = df["gender"].fillna("unknown")
    dup = df["sample"].duplicated(keep=False)
    if dup.any():
        names = sorted(set(df.loc[dup, "sample"]))
        raise InputError(path, f"duplicate sample id(s) in population panel: {', '.join(names[:10])}")
    return df.reset_index(drop=True)


def match_samples(path: Path, panel, pan: pd.DataFrame, vcf_samples: list[str], panel_subset: bool) -> list[str]:
    """The VCF samples (in VCF order) that are in the panel; raise on mismatches."""
    in_panel = set(pan["sample"])
    kept = [s for s in vcf_samples if s in in_panel]
    if not panel_subset:
        in_vcf = set(vcf_samples)
        absent = [s for s in pan["sample"] if s not in in_vcf]
        if absent:
            raise InputError(
                path,
                f"{len(absent)} sample(s) of panel file {panel} not in the VCF: {', '.join(absent[:10])}"
                + (" ..." if len(absent) > 10 else "")
                + " (pass a panel of exactly the VCF's samples, or panel_subset=True)",
            )
    if not kept:
        raise InputError(path, f"none of the VCF's {len(vcf_samples)} samples is in the panel file {panel}")
    if len(kept) < len(vcf_samples):
        log.info("%s: ignoring %d VCF sample(s) not in the panel file", path, len(vcf_samples) - len(kept))
    return kept


class Populations:
    """Populations of the kept samples and per-population ALT frequencies.

    ``pop`` : ndarray, str, shape (n_samples,): each kept sample's population.
    """

    def __init__(self, pop: np.ndarray):
        self.names = np.array(sorted(pd.unique(pop)), dtype=object)
        self.index = np.searchsorted(self.names, pop).astype(np.int16)
        # per-population sums with add.reduceat over samples grouped by population: a BLAS
        # matmul would leave OpenBLAS threads spinning on the core the parser needs
        by_pop = np.argsort(self.index, kind="stable")
        self.start = np.searchsorted(self.index[by_pop], np.arange(len(self.names)))
        self.n_hap = 2.0 * np.bincount(self.index, minlength=len(self.names))
        # already grouped: no gather needed
        self.by_pop = slice(None) if (by_pop == np.arange(len(pop))).all() else by_pop

    def alt_freq(self, counts: np.ndarray) -> np.ndarray:
        """ALT frequency per population: ndarray, float32, shape (n_sites, n_populations).

        ``counts`` : ndarray, int8, shape (n_sites, n_samples): ALT alleles per genotype.
        """
        pop_ac = np.add.reduceat(counts[:, self.by_pop], self.start, axis=1, dtype=np.int64)
        return (pop_ac / self.n_hap).astype(np.float32)
