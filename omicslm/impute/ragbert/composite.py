"""The copying model with one composite state set per query haplotype: one forward-backward over the chunk.

:func:`omicslm.impute.ragbert.copying.copying_alt_prob` runs a forward-backward per window over the
array sites within ``flank_sites`` of it, with that window's FAISS candidates as states: every
window repeats almost the whole chunk's HMM, so its cost grows as windows x flank x candidates.
Here, as IMPUTE5 and Beagle do, each query haplotype gets one *composite* state set: the panel
haplotypes FAISS retrieved for it in any window, the ``max_states`` most often retrieved when there
are more. One forward-backward over all the query's array sites then gives the state posteriors,
and the ALT probability of every site is the posterior, interpolated linearly in genetic position
between the bracketing array sites, times the states' alleles. Cost per query haplotype:
array sites x states for the HMM, sites x states for the read-out — linear in the chunk.

The model is the same Li-Stephens HMM (Beagle 5's switch rate over the number of panel
haplotypes, the same error), in torch: batched over query haplotypes, float32 with per-step
renormalisation, on CPU threads or CUDA. A query whose composite set is smaller than
``max_states`` has padded states with zero emission, and its switch spreads over its own states.
"""

from __future__ import annotations

import numpy as np
import torch

from omicslm.impute.ragbert.copying import switch_probability


def composite_states(candidates: np.ndarray, *, max_states: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's composite state set from its per-window candidates.

    Parameters
    ----------
    candidates : ndarray, int, shape (n_windows, n_queries, n_candidates)
        Panel columns retrieved per window and query (``-1``: none).
    max_states : int
        At most this many states per query: the most often retrieved (ties: the lower column).

    Returns
    -------
    states : ndarray, int64, shape (n_queries, m)
        Panel columns, ``m = min(max_states, largest set)``; padded with 0 where ``valid`` is false.
    valid : ndarray, bool, shape (n_queries, m)
    """
    n_w, n_q, _ = candidates.shape
    sets = []
    for q in range(n_q):
        cols = candidates[:, q, :].ravel()
        cols, counts = np.unique(cols[cols >= 0], return_counts=True)
        order = np.lexsort((cols, -counts))[:max_states]
        sets.append(np.sort(cols[order]))
    m = max(1, max(len(s) for s in sets))
    states = np.zeros((n_q, m), dtype=np.int64)
    valid = np.zeros((n_q, m), dtype=bool)
    for q, s in enumerate(sets):
        states[q, :len(s)], valid[q, :len(s)] = s, True
    return states, valid


def _posteriors(emission: torch.Tensor, valid: torch.Tensor, switch: torch.Tensor) -> torch.Tensor:
    """Forward-backward state posteriors, (Q, S, M), of emissions (Q, S, M) with switch (S - 1,)."""
    q, s, m = emission.shape
    k = valid.sum(dim=1, keepdim=True).clamp(min=1).to(emission.dtype)  # states per query
    mask = valid.to(emission.dtype)
    fwd = torch.empty_like(emission)
    x = emission[:, 0] * mask
    x = x / x.sum(dim=1, keepdim=True)
    fwd[:, 0] = x
    for a in range(1, s):
        r = switch[a - 1]
        x = (x * (1.0 - r) + r * mask / k) * emission[:, a]
        fwd[:, a] = x = x / x.sum(dim=1, keepdim=True)
    post = fwd  # the backward pass multiplies in place, site by site
    x = mask / k
    post[:, s - 1] = post[:, s - 1] * x
    for a in range(s - 2, -1, -1):
        r = switch[a]
        y = x * emission[:, a + 1]
        x = y * (1.0 - r) + r * mask * (y.sum(dim=1, keepdim=True) / k)
        x = x / x.sum(dim=1, keepdim=True)
        post[:, a] = post[:, a] * x
    return post / post.sum(dim=2, keepdim=True)


def composite_alt_prob(panel_hap: np.ndarray, query_hap: np.ndarray, observed_idx: np.ndarray,
                       candidates: np.ndarray, position_cm: np.ndarray, *, ne: float, error: float,
                       max_states: int, query_batch: int = 64, site_block: int = 1024,
                       device: torch.device | str = "cpu") -> np.ndarray:
    """ALT probability of every query haplotype at every site under the composite-state copying model.

    Parameters
    ----------
    panel_hap : ndarray, int8, shape (n_variants, n_panel)
    query_hap : ndarray, int8, shape (n_variants, n_queries)
        Only the ``observed_idx`` rows are read (the array sites).
    observed_idx : ndarray, int, shape (n_observed,)
        Sorted site indices the queries are typed at.
    candidates : ndarray, int, shape (n_windows, n_queries, n_candidates)
        FAISS candidates per window (as :func:`~omicslm.impute.ragbert.copying.copying_alt_prob` takes).
    position_cm : ndarray, float, shape (n_variants,)
    ne, error : float
        Switch rate and mismatch probability, as in the windowed model.
    max_states : int
        Composite states per query haplotype.
    query_batch, site_block : int
        Queries per forward-backward batch; sites per read-out block (memory: batch x block x states).
    device : torch device

    Returns
    -------
    ndarray, float32, shape (n_variants, n_queries)
    """
    if not 0 < error < 0.5:
        raise ValueError(f"copying error must be in (0, 0.5), got {error}")
    device = torch.device(device)
    n_var, n_q = query_hap.shape
    obs_idx = np.asarray(observed_idx, dtype=np.int64)
    cm = np.asarray(position_cm, dtype=np.float64)
    switch = torch.as_tensor(switch_probability(np.diff(cm[obs_idx]), ne=ne, n_panel_haplotypes=panel_hap.shape[1]),
                             dtype=torch.float32, device=device)
    # each site between observed sites li and ri (clamped at the ends), weight t on ri
    ri = np.clip(np.searchsorted(obs_idx, np.arange(n_var)), 0, len(obs_idx) - 1)
    li = np.clip(ri - 1, 0, len(obs_idx) - 1)
    span = cm[obs_idx[ri]] - cm[obs_idx[li]]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(np.where(span > 0, (cm - cm[obs_idx[li]]) / span, 1.0), 0.0, 1.0)
    panel_t = torch.as_tensor(np.ascontiguousarray(panel_hap[obs_idx]), device=device)  # alleles at the array sites
    carriers = minor_carriers(panel_hap, site_block=site_block)
    out = np.empty((n_var, n_q), dtype=np.float32)
    states_all, valid_all = composite_states(candidates, max_states=max_states)
    n_panel = panel_hap.shape[1]
    for q0 in range(0, n_q, query_batch):
        q1 = min(n_q, q0 + query_batch)
        states = torch.as_tensor(states_all[q0:q1], device=device)           # (Q, M)
        valid = torch.as_tensor(valid_all[q0:q1], device=device)
        obs = torch.as_tensor(np.ascontiguousarray(query_hap[obs_idx, q0:q1].T), device=device)  # (Q, S)
        copied = panel_t[:, states].permute(1, 0, 2)                            # (Q, S, M)
        emission = torch.where(copied == obs[:, :, None], 1.0 - error, error).to(torch.float32)
        emission = emission * valid[:, None, :]
        post = _posteriors(emission, valid, switch)
        out[:, q0:q1] = _read_out(post, states, valid, carriers, li, ri, t, n_panel=n_panel, device=device)
    return out


def minor_carriers(panel_hap: np.ndarray, *, site_block: int) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per block of sites: ``(start, end, site, hap, alt_is_minor)``, the panel haplotypes carrying each site's minor allele.

    The ALT probability of a site is the posterior mass on the states carrying ALT; reading it
    from the carriers of the *minor* allele (and ``1 -`` that where the minor allele is REF)
    touches MAF x states entries per site instead of all states.
    """
    blocks = []
    for j0 in range(0, panel_hap.shape[0], site_block):
        j1 = min(panel_hap.shape[0], j0 + site_block)
        h = panel_hap[j0:j1]
        alt_minor = h.sum(axis=1) * 2 <= h.shape[1]
        minor = np.where(alt_minor[:, None], h == 1, h == 0)
        site, hap = np.nonzero(minor)
        blocks.append((j0, j1, site.astype(np.int64), hap.astype(np.int64), alt_minor))
    return blocks


def _read_out(post: torch.Tensor, states: torch.Tensor, valid: torch.Tensor, carriers, li: np.ndarray,
              ri: np.ndarray, t: np.ndarray, *, n_panel: int, device: torch.device) -> np.ndarray:
    """ALT probability (n_variants, Q): the posterior, interpolated between array sites, summed over ALT carriers."""
    q, s, m = post.shape
    # where each panel haplotype sits in each query's state set (m: not a state -> the zero column)
    slot = torch.full((q, n_panel + 1), m, dtype=torch.int64, device=device)  # column n_panel: where padding goes
    slot.scatter_(1, torch.where(valid, states, n_panel), torch.arange(m, device=device).expand(q, m).contiguous())
    slot[:, n_panel] = m
    flat = torch.cat([post, post.new_zeros(q, s, 1)], dim=2).reshape(q, s * (m + 1))
    out = np.empty((len(li), q), dtype=np.float32)
    for j0, j1, site, hap, alt_minor in carriers:
        j = torch.as_tensor(site + j0, device=device)
        h = torch.as_tensor(hap, device=device)
        lo = torch.as_tensor(li, device=device)[j] * (m + 1)
        hi = torch.as_tensor(ri, device=device)[j] * (m + 1)
        tt = torch.as_tensor(t, dtype=torch.float32, device=device)[j]
        col = slot[:, h]                                                         # (Q, E)
        mass = flat.gather(1, lo + col) * (1.0 - tt) + flat.gather(1, hi + col) * tt
        minor = post.new_zeros(q, j1 - j0).index_add_(1, torch.as_tensor(site, device=device), mass)
        flip = torch.as_tensor(~alt_minor, device=device)
        out[j0:j1] = torch.where(flip, 1.0 - minor, minor).clamp(0.0, 1.0).T.cpu().numpy()
    return out
