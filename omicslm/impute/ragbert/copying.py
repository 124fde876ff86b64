"""A Li-Stephens copying model over the haplotypes FAISS retrieved: per-site ALT probability.

The K haplotypes nearest to a query over a whole window (:mod:`omicslm.impute.ragbert.retrieval`)
are the right ones *on average* over that window; which of them the query copies from
changes along it (recombination), and a rare allele is carried only by the few that share
the query's haplotype right at that site. The copying model of Li and Stephens (2003), the
model inside Beagle, IMPUTE and minimac, says exactly that: a hidden state is the panel
haplotype being copied, it switches to another with a probability that grows with genetic
distance, and an observed allele matches the copied one except for a small error.

Here the hidden states are a window's ``candidates`` retrieved haplotypes (not the whole
panel: FAISS does the state selection, as PBWT does in IMPUTE5), the observations are the
query's alleles at the window's array (query) sites, and forward-backward gives, at every
array site, the posterior probability of copying each candidate. Between array sites the
state probabilities are interpolated linearly in genetic position (as Beagle does); the
ALT probability of a site is the posterior-weighted ALT allele of the candidates, averaged
over the windows that cover the site.

Switch probability between consecutive array sites ``d`` cM apart:
``1 - exp(-0.04 * ne * d / n_panel_haplotypes)`` (Beagle 5's parametrisation, with the
number of panel haplotypes, not of candidates: the switch rate reflects how closely the
panel's haplotypes are related, which the candidate subset does not change).

Only the query's observed alleles and the panel enter; in training the candidates already
exclude the query haplotype and its partner (``retrieve_windows(exclude=...)``).
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from omicslm.errors import InputError


def site_cm(positions: np.ndarray, *, genetic_map: str | os.PathLike | None = None,
            cm_per_mb: float = 1.0) -> np.ndarray:
    """Genetic position (cM) of every site.

    Parameters
    ----------
    positions : ndarray, int, shape (n_variants,)
        Physical positions (bp).
    genetic_map : path, optional
        PLINK map (``chrom . cM pos``, as the ``genetic_map`` rule writes it for Beagle):
        positions are interpolated linearly in it, and extrapolated beyond its ends with
        its average rate. None = uniform map of ``cm_per_mb``.
    cm_per_mb : float
        The uniform map's rate.

    Returns
    -------
    ndarray, float64, shape (n_variants,)
    """
    pos = np.asarray(positions, dtype=np.float64)
    if genetic_map is None:
        return pos * float(cm_per_mb) / 1e6
    try:
        table = np.loadtxt(genetic_map, usecols=(2, 3), dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(genetic_map, f"not a PLINK map (chrom . cM pos): {exc}") from None
    if len(table) < 2 or (np.diff(table[:, 1]) <= 0).any() or (np.diff(table[:, 0]) < 0).any():
        raise InputError(genetic_map, "a PLINK map needs >= 2 lines with increasing positions and "
                                      "non-decreasing cM")
    cm, bp = table[:, 0], table[:, 1]
    rate = (cm[-1] - cm[0]) / (bp[-1] - bp[0])
    out = np.interp(pos, bp, cm)
    out = np.where(pos < bp[0], cm[0] - (bp[0] - pos) * rate, out)
    return np.where(pos > bp[-1], cm[-1] + (pos - bp[-1]) * rate, out)


def switch_probability(d_cm: np.ndarray, *, ne: float, n_panel_haplotypes: int) -> np.ndarray:
    """Probability of switching the copied haplotype across genetic distances ``d_cm``."""
    return -np.expm1(-0.04 * float(ne) * np.asarray(d_cm, dtype=np.float64) / max(1, int(n_panel_haplotypes)))


def forward_backward(emission: np.ndarray, switch: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """State posteriors of the copying HMM at sites ``lo .. hi - 1``.

    Parameters
    ----------
    emission : ndarray, float, shape (n_queries, n_sites, n_states)
        Likelihood of each query's observed allele at each site under each copied state.
    switch : ndarray, float, shape (n_sites - 1,)
        Switch probability between consecutive sites (the new state is uniform over states).
    lo, hi : int
        The sites whose posteriors are wanted (default all). The forward pass runs from the
        first site to ``hi - 1`` and the backward pass from the last site down to ``lo``:
        with a short window inside long flanks, half the work of two full passes, same values.

    Returns
    -------
    ndarray, float32, shape (n_queries, hi - lo, n_states), rows summing to 1 (every step
    is renormalised, so single precision loses nothing that matters and halves the time).
    """
    em = np.asarray(emission, dtype=np.float32)
    switch = np.asarray(switch, dtype=np.float32)
    q, n, k = em.shape
    hi = n if hi is None else int(hi)
    if not 0 <= lo < hi <= n:
        raise ValueError(f"need 0 <= lo < hi <= {n} sites, got lo {lo}, hi {hi}")
    fwd = np.empty((q, hi - lo, k), dtype=np.float32)  # kept for lo .. hi-1 only
    bwd = np.empty((q, hi - lo, k), dtype=np.float32)
    x = em[:, 0]
    x = x / x.sum(axis=1, keepdims=True)
    if lo == 0:
        fwd[:, 0] = x
    for a in range(1, hi):
        r = switch[a - 1]
        x = (x * (1.0 - r) + r / k) * em[:, a]
        x = x / x.sum(axis=1, keepdims=True)
        if a >= lo:
            fwd[:, a - lo] = x
    x = np.full((q, k), 1.0 / k, dtype=np.float32)
    if n - 1 < hi:
        bwd[:, n - 1 - lo] = x
    for a in range(n - 2, lo - 1, -1):
        r = switch[a]
        y = x * em[:, a + 1]
        x = y * (1.0 - r) + r * y.mean(axis=1, keepdims=True)
        x = x / x.sum(axis=1, keepdims=True)
        if a < hi:
            bwd[:, a - lo] = x
    post = fwd * bwd
    return post / post.sum(axis=2, keepdims=True)


def copying_alt_prob(panel_hap: np.ndarray, query_hap: np.ndarray, windows: np.ndarray,
                     query_sites: list[np.ndarray], candidates: np.ndarray, position_cm: np.ndarray, *,
                     ne: float, error: float, query_chunk: int = 1024) -> np.ndarray:
    """ALT probability of every query haplotype at every site under the copying model.

    Parameters
    ----------
    panel_hap : ndarray, int8, shape (n_variants, n_panel)
    query_hap : ndarray, int8, shape (n_variants, n_queries)
        Only the ``query_sites`` rows are read (the array sites).
    windows : ndarray, int, shape (n_windows, 2)
        ``[start, end)`` site indices.
    query_sites : list of ndarray, one per window
        Sorted array-site indices the window's retrieval compared (window plus flanks).
    candidates : ndarray, int, shape (n_windows, n_queries, n_candidates)
        Panel columns retrieved for each window and query (the hidden states).
    position_cm : ndarray, float, shape (n_variants,)
        Genetic position of every site.
    ne : float
        Effective population size of the switch rate.
    error : float
        Probability that an observed allele differs from the copied haplotype's.
    query_chunk : int
        Queries processed together (memory: ``chunk x sites x candidates`` floats).

    Returns
    -------
    ndarray, float32, shape (n_variants, n_queries); sites no window covers are 0.5.
    """
    if not 0 < error < 0.5:
        raise ValueError(f"copying error must be in (0, 0.5), got {error}")
    n_var, n_q = query_hap.shape
    n_panel = panel_hap.shape[1]
    cm = np.asarray(position_cm, dtype=np.float64)
    total = np.zeros((n_var, n_q), dtype=np.float64)
    count = np.zeros(n_var, dtype=np.int64)
    for w, (s, e) in enumerate(tqdm(windows, desc="copying model", unit=" windows", mininterval=5)):
        sites = np.asarray(query_sites[w], dtype=np.int64)
        site_cm_w = cm[sites]
        panel_at_sites = panel_hap[sites]  # (S, n_panel), shared by every query chunk
        switch = switch_probability(np.diff(site_cm_w), ne=ne, n_panel_haplotypes=n_panel)
        js = np.arange(s, e)
        # each window site between array sites li and ri (clamped at the ends), weight t on ri
        ri = np.clip(np.searchsorted(sites, js), 0, len(sites) - 1)
        li = np.clip(ri - 1, 0, len(sites) - 1)
        span = site_cm_w[ri] - site_cm_w[li]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(span > 0, (cm[js] - site_cm_w[li]) / span, 1.0)
        t = np.clip(t, 0.0, 1.0)[None, :, None]
        lo, hi = int(li.min()), int(ri.max()) + 1
        for q0 in range(0, n_q, max(1, int(query_chunk))):
            q1 = min(n_q, q0 + max(1, int(query_chunk)))
            cand = candidates[w, q0:q1]  # (Q, C)
            states = panel_at_sites[:, cand].transpose(1, 0, 2)  # (Q, S, C)
            obs = query_hap[sites, q0:q1].T[:, :, None]  # (Q, S, 1)
            # posteriors are needed only at the array sites bracketing the window's sites
            post = forward_backward(np.where(states == obs, np.float32(1.0 - error), np.float32(error)), switch,
                                    lo=lo, hi=hi)
            at = post[:, li - lo] * (1.0 - t) + post[:, ri - lo] * t  # (Q, L, C)
            alleles = panel_hap[s:e][:, cand].transpose(1, 0, 2)  # (Q, L, C)
            total[s:e, q0:q1] += (at * alleles).sum(axis=2).T
        count[s:e] += 1
    out = np.full((n_var, n_q), 0.5, dtype=np.float32)
    seen = count > 0
    out[seen] = (total[seen] / count[seen, None]).astype(np.float32)
    return out
