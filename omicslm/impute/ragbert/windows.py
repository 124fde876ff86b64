"""The window table of a panel and the model's inputs over it (features, retrieval, copying model).

:func:`write_windows` tiles an ingested panel's sites into windows (``windows.tsv``, the data
step both training and imputation read); :func:`window_data` builds the
:class:`~omicslm.impute.ragbert.batches.WindowData` of a set of query haplotypes over those
windows: site features from the panel samples, the FAISS neighbours of every query window
(:mod:`omicslm.impute.ragbert.retrieval`) and the copying model's ALT probability
(:mod:`omicslm.impute.ragbert.copying`). :func:`panel_fingerprint` and :func:`file_sha1` name the
data a model was made with, so a checkpoint is never applied to another panel.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from omicslm.errors import InputError
from omicslm.impute import layout
from omicslm.impute.layout import Panel
from omicslm.impute.ragbert.batches import WindowData, panel_site_stats
from omicslm.impute.ragbert.composite import composite_alt_prob, slots_alt_prob
from omicslm.impute.ragbert.copying import copying_alt_prob, site_cm
from omicslm.impute.ragbert.retrieval import retrieve_windows, window_query_sites, window_site_weights
from omicslm.io.atomic import atomic_open

log = logging.getLogger(__name__)


def write_windows(h5: str | os.PathLike, out_tsv: str | os.PathLike, *, sites: int, overlap: int) -> pd.DataFrame:
    """Tile an ingested panel's sites into windows of ``sites`` consecutive sites.

    Consecutive windows share ``overlap`` sites (step ``sites - overlap``); the last
    window is moved back to end at the last site, so every site is covered and every
    window has exactly ``sites`` sites (one window of all sites when the panel has
    fewer than ``sites``).

    Parameters
    ----------
    h5 : path-like
        Ingested panel (:mod:`omicslm.impute.layout`).
    out_tsv : path-like
        Tab-separated output, written atomically.
    sites, overlap : int
        Window length and overlap in sites; ``0 <= overlap < sites``.

    Returns
    -------
    pandas.DataFrame
        One row per window: ``window, start_idx, end_idx`` (exclusive), ``start_pos,
        end_pos`` (1-based, inclusive), ``n_sites``.
    """
    if sites < 1 or not 0 <= overlap < sites:
        raise ValueError(f"need sites >= 1 and 0 <= overlap < sites, got sites={sites}, overlap={overlap}")
    layout.check_h5(h5, required=("variants/POS",))
    with h5py.File(h5, "r") as f:
        pos = f["variants/POS"][:]
    n = len(pos)
    if n == 0:
        raise InputError(h5, "panel has no sites to tile into windows")
    if n <= sites:
        starts = np.array([0])
    else:
        step = sites - overlap
        starts = np.arange(0, n - sites + 1, step)
        if starts[-1] + sites < n:
            starts = np.append(starts, n - sites)
    ends = np.minimum(starts + sites, n)
    df = pd.DataFrame(
        {
            "window": np.arange(len(starts)),
            "start_idx": starts,
            "end_idx": ends,
            "start_pos": pos[starts],
            "end_pos": pos[ends - 1],
            "n_sites": ends - starts,
        }
    )
    with atomic_open(out_tsv, "w") as fh:
        df.to_csv(fh, sep="\t", index=False)
    log.info("%s: %d windows of %d sites (overlap %d) over %d sites", out_tsv, len(df), sites, overlap, n)
    return df


def read_windows(windows_tsv: str | os.PathLike, n_variants: int) -> np.ndarray:
    """Read ``windows.tsv`` (columns ``start_idx``, ``end_idx`` exclusive).

    Returns
    -------
    ndarray, int64, shape (n_windows, 2)
        ``[start, end)`` site indices of every window.

    Raises
    ------
    InputError
        A column is missing, a window is empty or outside ``[0, n_variants)``, or a site is
        covered by no window.
    """
    try:
        df = pd.read_csv(windows_tsv, sep="\t")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(windows_tsv, f"cannot read window table ({exc})") from exc
    for col in ("start_idx", "end_idx"):
        if col not in df.columns:
            raise InputError(windows_tsv, f"missing column {col!r}; header is {list(df.columns)}")
    win = df[["start_idx", "end_idx"]].to_numpy(dtype=np.int64)
    bad = (win[:, 0] < 0) | (win[:, 1] > n_variants) | (win[:, 1] <= win[:, 0])
    if bad.any():
        k = int(np.argmax(bad))
        raise InputError(windows_tsv, f"window [{win[k, 0]}, {win[k, 1]}) is empty or outside the panel's "
                         f"{n_variants} sites (was the window table made from another panel?)", record=f"row {k + 1}")
    covered = np.zeros(n_variants, dtype=bool)
    for s, e in win:
        covered[s:e] = True
    if not covered.all():
        raise InputError(windows_tsv, f"site index {int(np.argmin(covered))} is in no window")
    return win


def file_sha1(path) -> str | None:
    """SHA-1 of a file's bytes (None for no file): which genetic map a model was trained with."""
    return None if path is None else hashlib.sha1(Path(path).read_bytes()).hexdigest()


def panel_fingerprint(panel: Panel) -> dict:
    """What identifies the panel a model was trained on: contig, sites, sample count."""
    return {
        "contig": panel.contig,
        "n_sites": int(panel.n_variants),
        "positions_sha1": hashlib.sha1(np.ascontiguousarray(panel.pos, dtype=np.int64).tobytes()).hexdigest(),
        "n_samples": int(panel.n_samples),
        "populations": [str(p) for p in panel.populations],
    }


def copying_options(cfg: dict) -> dict | None:
    """The ``copying`` block when the copying model is on (it needs retrieval), else None."""
    copying = cfg.get("copying") or {}
    return copying if copying.get("enabled") and cfg.get("retrieval", True) else None


def haplotype_columns(hap: np.ndarray, sample_idx: np.ndarray) -> np.ndarray:
    """(n_variants, n_samples, 2) -> (n_variants, 2 * len(sample_idx)), column 2i+h."""
    return np.ascontiguousarray(hap[:, sample_idx, :].reshape(hap.shape[0], -1))


def _panel_columns(panel_idx: np.ndarray, query_idx: np.ndarray) -> np.ndarray:
    """The panel columns (2i + h, :func:`haplotype_columns` of ``panel_idx``) of the query samples' haplotypes."""
    where = {int(s): i for i, s in enumerate(panel_idx)}
    try:
        pos = np.array([where[int(s)] for s in query_idx], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"exclude_self: query sample {exc} is not a panel sample") from None
    return (2 * pos[:, None] + np.arange(2)).ravel()


def _copying_prob(positions: np.ndarray, panel_hap: np.ndarray, query_hap: np.ndarray, observed_idx: np.ndarray,
                  windows: np.ndarray, candidates: np.ndarray, copying: dict, *, genetic_map, device,
                  threads: int | None = None) -> np.ndarray:
    """The copying model's ALT probability (n_variants, n_queries) over the retrieved ``candidates``, by the state
    model ``copying.states`` names (slots, composite or window)."""
    cm = site_cm(positions, genetic_map=genetic_map, cm_per_mb=copying["cm_per_mb"])
    # the HMM reads a longer stretch of array sites than the retrieval compared: a copied
    # segment is pinned down by the matches on both sides of it, far beyond the window
    if copying.get("states", "window") == "slots":
        # Beagle-style composite haplotypes: a fixed number of states whose copied column changes along
        # the chunk (each window's candidates are states where it is read)
        n_slots = int(copying.get("slots", 256))
        if n_slots < candidates.shape[2]:
            raise InputError("config impute.model.copying.slots", f"{n_slots} slots are fewer than the "
                             f"{candidates.shape[2]} candidates per window (copying.candidates)")
        return slots_alt_prob(panel_hap, query_hap, observed_idx, candidates, windows, cm,
                              ne=copying["ne"], error=copying["error"], n_slots=n_slots, device=device,
                              readout_tolerance=float(copying.get("readout_tolerance", 0.0)), threads=threads)
    if copying.get("states", "window") == "composite":
        # one forward-backward per query over all its array sites, states pooled over its windows
        return composite_alt_prob(panel_hap, query_hap, observed_idx, candidates, cm, ne=copying["ne"],
                                  error=copying["error"], max_states=copying["max_states"], device=device)
    hmm_sites = window_query_sites(windows, observed_idx, flank_sites=copying["flank_sites"])
    return copying_alt_prob(panel_hap, query_hap, windows, hmm_sites, candidates, cm, ne=copying["ne"],
                            error=copying["error"])


def window_data(panel: Panel, windows: np.ndarray, observed: np.ndarray, *, query_hap: np.ndarray, labels: bool,
                 panel_idx: np.ndarray, cfg: dict, exclude_self: bool, seed: int, threads: int, window_sites: int,
                 genetic_map=None, query_idx: np.ndarray | None = None, query_pop: np.ndarray | None = None,
                 device="cpu", network: bool = True) -> WindowData:
    """Features from ``panel_idx`` samples; retrieval of query haplotypes against them.

    The queries' populations are ``query_pop``, or those of the panel samples ``query_idx``.

    ``genetic_map`` (PLINK map, optional) places sites in cM for the copying model; without
    one the map is uniform (``copying.cm_per_mb``). ``device``: where the composite copying model's
    forward-backward runs (a torch device; CUDA when imputing there).

    ``network=False`` (imputing with the copying model alone): only what the copying model needs, with
    no retrieval of the network's ``k`` neighbours and no per-site panel statistics (``neighbours`` and
    ``stats`` are None).
    """
    stats = panel_site_stats(panel.hap, panel.pop, panel_idx, len(panel.populations)) if network else None
    panel_hap = haplotype_columns(panel.hap, panel_idx)
    panel_pop = np.repeat(panel.pop[panel_idx].astype(np.int64), 2)
    neighbours = copy_prob = None
    if cfg.get("retrieval", True):
        observed_idx = np.flatnonzero(observed)
        sites = window_query_sites(windows, observed_idx, flank_sites=cfg["query_flank_sites"])
        weights = window_site_weights(windows, sites, decay_sites=cfg.get("query_decay_sites"))
        exclude = None
        if exclude_self:
            # Queries are haplotypes of panel samples (all of them or some): a query must not retrieve its own
            # column or its partner's (col ^ 1)
            cols = _panel_columns(panel_idx, panel_idx if query_idx is None else query_idx)
            exclude = np.stack([cols, cols ^ 1], axis=1)
        r = cfg["retrieval_index"]
        index_opts = dict(ivf_min_haplotypes=r["ivf_min_haplotypes"], nlist=r["nlist"], nprobe=r["nprobe"],
                          seed=seed, threads=threads)
        copying = copying_options(cfg)
        available = panel_hap.shape[1] - (0 if exclude is None else exclude.shape[1])
        n_cand = max(1, min(copying["candidates"], available)) if copying is not None else 0
        # one search serves both when the copying model's candidates are retrieved on the model's query
        # and are at least k: the network's neighbours are the nearest k of them
        shared = network and copying is not None and copying.get("query_flank_sites") is None and n_cand >= cfg["k"]
        if network and not shared:
            try:
                neighbours = retrieve_windows(panel_hap, query_hap, sites, k=cfg["k"], exclude=exclude,
                                              weights=weights, **index_opts)
            except ValueError as exc:
                raise InputError("config impute.model.k", str(exc)) from None
        if copying is not None:
            # the copying model's states: more candidates, retrieved on their own query (the
            # model's when copying.query_flank_sites / query_decay_sites are null)
            flank = copying.get("query_flank_sites")
            decay = copying.get("query_decay_sites") if flank is not None else cfg.get("query_decay_sites")
            c_sites = sites if flank is None else window_query_sites(windows, observed_idx, flank_sites=flank)
            c_weights = weights if flank is None else window_site_weights(windows, c_sites, decay_sites=decay)
            candidates = retrieve_windows(panel_hap, query_hap, c_sites, k=n_cand, exclude=exclude, weights=c_weights,
                                          **index_opts)
            if shared:
                neighbours = np.ascontiguousarray(candidates[:, :, :cfg["k"]])
            copy_prob = _copying_prob(panel.pos, panel_hap, query_hap, observed_idx, windows, candidates, copying,
                                      genetic_map=genetic_map, device=device, threads=threads)
    return WindowData(windows=windows, window_sites=window_sites,
                      positions=panel.pos, vtype=panel.vtype, stats=stats, observed=observed,
                      query_hap=query_hap, query_pop=panel.pop[query_idx] if query_pop is None else query_pop,
                      panel_hap=panel_hap,
                      panel_pop=panel_pop, neighbours=neighbours, copy_prob=copy_prob, labels=labels)
