"""Split samples into reference panel / validation / test and build the array inputs.

* :func:`split_samples` draws test and validation samples within each population
  (stratified, seeded). The *panel* that every method may use = reference +
  validation samples; validation samples are held out only from model training.
* :func:`select_array_sites` picks the "genotyping array": the positions of a chip
  manifest, or a density rule (panel MAF >= ``min_maf``, at most one site per
  ``spacing_bp``).
* :func:`write_panel_vcf` / :func:`write_target_vcf` write the identical inputs all
  methods receive: panel haplotypes at every site, test haplotypes at array sites.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from omicslm.errors import InputError
from omicslm.impute.layout import Panel, is_snp_type, read_panel
from omicslm.io.atomic import atomic_open
from omicslm.io.vcf import write_vcf

log = logging.getLogger(__name__)

ROLES = ("reference", "validation", "test")
PANEL_ROLES = ("reference", "validation")
SPLIT_COLUMNS = ["sample", "pop", "super_pop", "role"]
_SPLIT_HEADER = "\t".join(SPLIT_COLUMNS)


def split_samples(h5, out_tsv, *, test_fraction: float, validation_fraction: float, seed: int) -> pd.DataFrame:
    """Assign every ingested sample a role, stratified by population.

    In each population of ``n`` samples, ``round(n * test_fraction)`` (at least 1 when
    ``n >= 3``, unless ``test_fraction`` is 0: a reference panel of your own, whose targets are
    other samples) go to test and ``round(n * validation_fraction)`` to validation; the
    rest are reference. Populations are visited in sorted order with one
    ``numpy.random.default_rng(seed)``, so the split is reproducible.
    """
    if test_fraction + validation_fraction >= 1:
        raise ValueError(f"test_fraction + validation_fraction = {test_fraction + validation_fraction} leaves no reference samples")
    panel = read_panel(h5, haplotypes=False)
    rng = np.random.default_rng(seed)
    role = np.full(panel.n_samples, "reference", dtype=object)
    for p_idx, _name in enumerate(panel.populations):
        members = np.flatnonzero(panel.pop == p_idx)
        n = len(members)
        n_test = int(round(n * test_fraction))
        if n >= 3 and test_fraction > 0:
            n_test = max(n_test, 1)
        n_val = int(round(n * validation_fraction))
        if n_test + n_val >= n:
            n_val = max(0, n - n_test - 1)
        order = rng.permutation(members)
        role[order[:n_test]] = "test"
        role[order[n_test:n_test + n_val]] = "validation"
    df = pd.DataFrame({
        "sample": panel.samples,
        "pop": panel.populations[panel.pop],
        "super_pop": panel.super_pop,
        "role": role,
    })
    if test_fraction > 0 and not (df.role == "test").any():
        raise InputError(h5, f"no test samples: {panel.n_samples} samples are too few for test_fraction={test_fraction}")
    with atomic_open(out_tsv) as fh:
        df.to_csv(fh, sep="\t", index=False)
    log.info("split %d samples: %s", len(df), df.groupby(["pop", "role"]).size().unstack(fill_value=0).to_dict("index"))
    return df


def read_split(split_tsv: str | os.PathLike) -> pd.DataFrame:
    """Read and validate the sample split table.

    Parameters
    ----------
    split_tsv : path
        Tab-separated, header ``sample  pop  super_pop  role``; role is one of
        ``reference``, ``validation``, ``test``.

    Returns
    -------
    DataFrame with columns ``sample, pop, super_pop, role`` (all str), one row per sample.

    Raises
    ------
    InputError
        Wrong header, unknown role, empty or duplicated sample name.
    """
    with open(split_tsv, newline="") as fh:
        # (line number, fields), blank lines skipped but counted so messages point at the right line
        lines = [(n, line.rstrip("\r\n").split("\t")) for n, line in enumerate(fh, start=1) if line.strip()]
    if not lines:
        raise InputError(split_tsv, f"file is empty; expected header {_SPLIT_HEADER!r}")
    header = "\t".join(lines[0][1])
    if header != _SPLIT_HEADER:
        raise InputError(split_tsv, f"header is {header!r}, expected {_SPLIT_HEADER!r}", record="line 1")
    rows = [row for _, row in lines[1:]]
    for lineno, row in lines[1:]:
        if len(row) != len(SPLIT_COLUMNS):
            raise InputError(split_tsv, f"expected {len(SPLIT_COLUMNS)} tab-separated fields, found {len(row)}",
                             record=f"line {lineno}")
        sample, _, _, role = row
        if not sample:
            raise InputError(split_tsv, "empty sample name", record=f"line {lineno}")
        if role not in ROLES:
            raise InputError(split_tsv, f"role {role!r} is not one of {', '.join(ROLES)}", record=sample)
    df = pd.DataFrame(rows, columns=SPLIT_COLUMNS, dtype=str)
    dup = df["sample"][df["sample"].duplicated()]
    if len(dup):
        raise InputError(split_tsv, "sample listed more than once", record=dup.iloc[0])
    return df


def role_indices(panel: Panel, split: pd.DataFrame, roles, *, split_tsv=None, h5=None) -> np.ndarray:
    """Indices into ``panel.samples`` (in panel order) of the split's samples whose role is in ``roles``.

    A split sample absent from the panel raises :class:`InputError` naming the split file
    (``split_tsv``), the sample and the HDF5 (``h5``) when given.
    """
    names = split.loc[split.role.isin(list(roles)), "sample"].to_numpy()
    index = {s: i for i, s in enumerate(panel.samples)}
    missing = [s for s in names if s not in index]
    if missing:
        raise InputError(split_tsv or "split table", f"sample is not in the ingested panel {h5 or ''}".rstrip(),
                         record=missing[0])
    return np.array(sorted(index[s] for s in names), dtype=np.int64)


def panel_alt_frequency(hap: np.ndarray, panel_idx: np.ndarray) -> np.ndarray:
    """ALT frequency over the panel samples' haplotypes.

    hap : int8 (n_variants, n_samples, 2); panel_idx : sample indices. Returns float64 (n_variants,).
    """
    sub = hap[:, panel_idx, :]
    return sub.reshape(len(sub), -1).mean(axis=1, dtype=np.float64)


def _read_manifest(path) -> np.ndarray:
    df = pd.read_csv(path, sep=r"\s+|,", engine="python", header=None, dtype=str, comment="#")
    if df.empty:
        raise InputError(path, "array manifest is empty")
    first = df.iloc[0].str.lower().tolist()
    col = first.index("pos") if "pos" in first else 0
    values = df.iloc[1:, col] if "pos" in first else df.iloc[:, col]
    try:
        return np.unique(values.astype(np.int64).to_numpy())
    except ValueError as exc:
        raise InputError(path, f"array manifest positions must be integers ({exc})") from None


def density_sites(pos: np.ndarray, af: np.ndarray, *, min_maf: float, spacing_bp: int) -> np.ndarray:
    """Indices of the array sites of the density rule: in each consecutive ``spacing_bp`` window, the first site
    whose MAF (from ALT frequency ``af``) is at least ``min_maf``.

    One site per consecutive window ("about one site per 1.2 kb", as array designs are described)
    rather than a minimum gap, which would leave far fewer sites than the stated density.
    """
    maf = np.minimum(af, 1 - af)
    eligible = np.flatnonzero(maf >= min_maf)
    window = np.asarray(pos)[eligible] // spacing_bp
    first = np.ones(len(eligible), dtype=bool)
    first[1:] = window[1:] != window[:-1]
    return eligible[first].astype(np.int64)


def select_array_sites(h5, split_tsv, out_tsv, *, manifest=None, min_maf: float, spacing_bp: int) -> pd.DataFrame:
    """Choose the sites the test samples are "genotyped" at; writes ``pos\\tidx``.

    With ``manifest`` (a file of positions), the array is those positions that are in
    the ingested panel (manifest sites absent from it are counted and logged). Without,
    the density rule keeps, in each consecutive ``spacing_bp`` window of the contig, the
    first site whose panel MAF >= ``min_maf``.
    """
    panel = read_panel(h5)
    split = read_split(split_tsv)
    af = panel_alt_frequency(panel.hap, role_indices(panel, split, PANEL_ROLES))
    if manifest:
        wanted = _read_manifest(manifest)
        keep = np.isin(panel.pos, wanted)
        n_absent = len(wanted) - int(keep.sum())
        if n_absent:
            log.warning("%d of %d manifest positions are not ingested panel sites and are skipped", n_absent, len(wanted))
        idx = np.flatnonzero(keep)
        source = f"manifest {manifest}"
    else:
        snp_af = np.where(is_snp_type(panel.vtype), af, 0.0)  # an array types SNPs: indels are imputed
        idx = density_sites(panel.pos, snp_af, min_maf=min_maf, spacing_bp=spacing_bp)
        source = f"density rule (panel SNP MAF >= {min_maf}, first such site in each {spacing_bp} bp window)"
    if len(idx) == 0:
        raise InputError(manifest or h5, f"no array sites selected by {source}")
    df = pd.DataFrame({"pos": panel.pos[idx], "idx": idx})
    with atomic_open(out_tsv) as fh:
        df.to_csv(fh, sep="\t", index=False)
    log.info("array: %d of %d sites by %s; %d sites left to impute", len(idx), panel.n_variants, source, panel.n_variants - len(idx))
    return df


def read_array_sites(array_tsv, panel: Panel | None = None, h5=None) -> pd.DataFrame:
    """Read ``pos\tidx`` array sites; with ``panel``, check every row against its sites.

    :class:`InputError` names the file and the first bad row: a wrong header, non-integer
    values, an index outside the panel, or a position that is not ``variants/POS[idx]``
    (an array table made for another HDF5).
    """
    df = pd.read_csv(array_tsv, sep="\t")
    if list(df.columns) != ["pos", "idx"]:
        raise InputError(array_tsv, f"header must be ['pos', 'idx'], found {list(df.columns)}")
    try:
        df = df.astype(np.int64)
    except (ValueError, TypeError) as exc:
        raise InputError(array_tsv, f"non-integer pos/idx ({exc})") from None
    if panel is not None:
        pos, idx = df["pos"].to_numpy(), df["idx"].to_numpy()
        out_of_range = (idx < 0) | (idx >= panel.n_variants)
        if out_of_range.any():
            raise InputError(array_tsv, f"idx outside [0, {panel.n_variants})", record=f"pos {pos[out_of_range][0]}")
        wrong = panel.pos[idx] != pos
        if wrong.any():
            k = int(np.argmax(wrong))
            raise InputError(array_tsv, f"pos does not match variants/POS[{idx[k]}] = {panel.pos[idx[k]]} in "
                             f"{h5 or 'the panel'}; rerun select_array_sites", record=f"pos {pos[k]}")
    return df


def write_panel_vcf(h5, split_tsv, out_vcf) -> int:
    """Write the panel samples' phased haplotypes at every ingested site."""
    panel = read_panel(h5)
    idx = role_indices(panel, read_split(split_tsv), PANEL_ROLES)
    write_vcf(out_vcf, contig=panel.contig, positions=panel.pos, ref=panel.ref, alt=panel.alt,
              samples=panel.samples[idx], haplotypes=panel.hap[:, idx, :], source="omicslm reference panel")
    log.info("panel VCF: %d samples x %d sites -> %s", len(idx), panel.n_variants, out_vcf)
    return len(idx)


def write_target_vcf(h5, split_tsv, array_tsv, out_vcf, *, phased: bool = True) -> int:
    """Write the test samples' genotypes at the array sites only: their true haplotypes (``|``), or, unless
    ``phased``, unphased calls (``0/1``, the haplotype order lost) as an array gives them, to be phased like real
    targets (rule impute_phase_targets)."""
    panel = read_panel(h5)
    idx = role_indices(panel, read_split(split_tsv), ["test"])
    sites = read_array_sites(array_tsv, panel, h5)["idx"].to_numpy()
    write_vcf(out_vcf, contig=panel.contig, positions=panel.pos[sites], ref=panel.ref[sites], alt=panel.alt[sites],
              samples=panel.samples[idx], haplotypes=panel.hap[np.ix_(sites, idx)], source="omicslm array targets",
              phased=phased)
    log.info("target VCF: %d samples x %d array sites (%s) -> %s", len(idx), len(sites),
             "phased" if phased else "unphased", out_vcf)
    return len(idx)
