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

torch is imported by the torch functions, not by this module: the slot model's compiled CPU engine
(:mod:`omicslm.impute.ragbert.fused`) runs without it, so imputing with the copying model alone
starts without torch's import (about 2 s).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from omicslm.impute.ragbert.copying import switch_probability
from omicslm.impute.ragbert.fused import slots_alt_prob_cpu

if TYPE_CHECKING:
    import torch


def copying_device(prefer: str = "auto"):
    """Where the copying model alone runs: ``"cpu"``, without importing torch, when it can be nothing else (asked
    for, or ``"auto"`` on a machine with no NVIDIA driver); otherwise torch's choice
    (:func:`~omicslm.train.device.pick_device`: CUDA when usable)."""
    name = str(prefer).strip().lower()
    if name == "cpu" or (name == "auto" and not nvidia_driver_present()):
        return "cpu"
    from omicslm.train.device import pick_device

    return pick_device(prefer)


def nvidia_driver_present() -> bool:
    """Whether an NVIDIA driver is loaded here (Linux ``/proc/driver/nvidia``, or WSL's ``/dev/dxg``): without one
    CUDA cannot be usable, so asking torch is not needed."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/dxg")


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
    import torch

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
    import torch

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


def minor_carriers(panel_hap: np.ndarray, *, site_block: int | None = None, bounds=None
                   ) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per block of sites: ``(start, end, site, hap, alt_is_minor)``, the panel haplotypes carrying each site's minor allele.

    Blocks of ``site_block`` sites, or between consecutive ``bounds`` (sorted site indices, 0 first, n_variants last).

    The ALT probability of a site is the posterior mass on the states carrying ALT; reading it
    from the carriers of the *minor* allele (and ``1 -`` that where the minor allele is REF)
    touches MAF x states entries per site instead of all states.
    """
    blocks = []
    n = panel_hap.shape[0]
    edges = list(bounds) if bounds is not None else [*range(0, n, site_block), n]
    for j0, j1 in zip(edges[:-1], edges[1:]):
        j0, j1 = int(j0), int(j1)
        h = panel_hap[j0:j1]
        alt_minor = h.sum(axis=1) * 2 <= h.shape[1]
        minor = np.where(alt_minor[:, None], h == 1, h == 0)
        site, hap = np.nonzero(minor)
        blocks.append((j0, j1, site.astype(np.int64), hap.astype(np.int64), alt_minor))
    return blocks


def _read_out(post: torch.Tensor, states: torch.Tensor, valid: torch.Tensor, carriers, li: np.ndarray,
              ri: np.ndarray, t: np.ndarray, *, n_panel: int, device: torch.device) -> np.ndarray:
    """ALT probability (n_variants, Q): the posterior, interpolated between array sites, summed over ALT carriers."""
    import torch

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


# --------------------------------------------------------------------------- slots: a fixed number of states

#: read a window stretch's ALT probability from the slots' alleles (sites x slots) when the panel's minor-allele
#: carriers there outnumber this many times that (the carriers' read-out is cheaper below it)
_DENSE_READ_OUT = 1.0


def slot_states(candidates: np.ndarray, *, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Beagle-style composite haplotypes: ``n_slots`` states per query whose panel haplotype changes along the chunk.

    Windows are scanned in order. A candidate of window ``w`` already held by a slot keeps it; a new
    one takes an empty slot, else the slot whose haplotype was a candidate longest ago (never one of
    window ``w``'s own). So every window's candidates are states while it is read, the number of states
    stays ``n_slots`` however long the chunk (cost sites x slots, linear), and a haplotype retrieved in
    one region only does not compete with the whole chunk's. A slot's first haplotype also holds it in
    the windows before it was filled.

    Parameters
    ----------
    candidates : ndarray, int, shape (n_windows, n_queries, n_candidates)
        Panel columns retrieved per window and query, best first (``-1``: none).
    n_slots : int
        States per query; at least the candidates per window.

    Returns
    -------
    slot_hap : ndarray, int64, shape (n_windows, n_queries, n_slots)
        Panel column each slot copies in each window (0 where ``valid`` is false).
    valid : ndarray, bool, shape (n_queries, n_slots)
        Slots ever filled (a query with fewer distinct candidates than slots has empty ones).
    """
    n_w, n_q, n_c = candidates.shape
    if n_slots < n_c:
        raise ValueError(f"copying.slots ({n_slots}) must be at least the candidates per window ({n_c})")
    n_panel = int(candidates.max()) + 2 if candidates.size else 1
    rows = np.arange(n_q)[:, None]
    where = np.full((n_q, n_panel), -1, dtype=np.int64)       # slot of each panel column, -1: none
    hap = np.full((n_q, n_slots), -1, dtype=np.int64)         # column in each slot, -1: empty
    used = np.full((n_q, n_slots), -2, dtype=np.int64)        # last window the slot's column was a candidate
    first = np.full((n_q, n_slots), -1, dtype=np.int64)       # window a slot was first filled
    slot_hap = np.empty((n_w, n_q, n_slots), dtype=np.int64)
    for w in range(n_w):
        cand = np.asarray(candidates[w], dtype=np.int64)
        ok = cand >= 0  # FAISS lists a column at most once per query and window
        col = np.where(ok, cand, n_panel - 1)  # the spare last column is never a candidate
        slot = where[rows, col]
        held = ok & (slot >= 0)
        used[np.broadcast_to(rows, held.shape)[held], slot[held]] = w
        new = ok & ~held
        if new.any():
            order = np.argsort(used, axis=1, kind="stable")           # empty (-2) first, then least recently used
            rank = np.cumsum(new, axis=1) - 1                          # rank of each new candidate in its row
            target = np.take_along_axis(order, np.where(new, rank, 0), axis=1)
            qi, ci = np.nonzero(new)
            ts = target[qi, ci]
            old = hap[qi, ts]
            gone = old >= 0
            where[qi[gone], old[gone]] = -1
            hap[qi, ts] = cand[qi, ci]
            where[qi, cand[qi, ci]] = ts
            used[qi, ts] = w
            fresh = first[qi, ts] < 0
            first[qi[fresh], ts[fresh]] = w
        slot_hap[w] = hap
    valid = first >= 0
    # before its first fill a slot copies its first column (no empty state at the start of the chunk)
    for w in range(n_w):
        early = valid & (first > w)
        if not early.any():
            break
        qi, si = np.nonzero(early)
        slot_hap[w, qi, si] = slot_hap[first[qi, si], qi, si]
    slot_hap[:, ~valid] = 0
    return slot_hap, valid


def slots_alt_prob(panel_hap: np.ndarray, query_hap: np.ndarray, observed_idx: np.ndarray, candidates: np.ndarray,
                   windows: np.ndarray, position_cm: np.ndarray, *, ne: float, error: float, n_slots: int,
                   query_batch: int = 64, device: torch.device | str = "cpu", engine: str = "auto",
                   readout_tolerance: float = 0.0, threads: int | None = None) -> np.ndarray:
    """ALT probability of every query haplotype at every site under the slot copying model (:func:`slot_states`).

    One forward-backward per query over all its array sites with ``n_slots`` states; the state in slot
    ``m`` at a site copies the column slot ``m`` holds in the site's window (the last window starting at
    or before it). Between array sites the posterior is interpolated linearly in genetic position and
    summed over the slots whose column carries the site's minor allele (:func:`minor_carriers`), or, where a big
    panel has more minor-allele carriers than there are slots, over the slots' own alleles.

    Parameters are those of :func:`composite_alt_prob`, with ``windows`` (n_windows, 2) the windows the
    candidates were retrieved for, and ``n_slots`` the states per query. ``engine``: ``"fused"`` runs
    the compiled per-query loop of :mod:`omicslm.impute.ragbert.fused` (CPU only), ``"torch"`` the
    batched tensors below (CPU or CUDA), ``"auto"`` fused on CPU and torch on CUDA. ``readout_tolerance``
    (fused): the most ALT probability its read-out may drop by skipping slots of negligible posterior; ``threads``
    (fused): its CPU threads (None: numba's current number).

    Returns
    -------
    ndarray, float32, shape (n_variants, n_queries)
    """
    if not 0 < error < 0.5:
        raise ValueError(f"copying error must be in (0, 0.5), got {error}")
    n_var, n_q = query_hap.shape
    obs_idx = np.asarray(observed_idx, dtype=np.int64)
    cm = np.asarray(position_cm, dtype=np.float64)
    switch = switch_probability(np.diff(cm[obs_idx]), ne=ne, n_panel_haplotypes=panel_hap.shape[1]).astype(np.float32)
    ri = np.clip(np.searchsorted(obs_idx, np.arange(n_var)), 0, len(obs_idx) - 1)
    li = np.clip(ri - 1, 0, len(obs_idx) - 1)
    span = cm[obs_idx[ri]] - cm[obs_idx[li]]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(np.where(span > 0, (cm - cm[obs_idx[li]]) / span, 1.0), 0.0, 1.0)
    starts = np.asarray(windows, dtype=np.int64)[:, 0]
    seg = np.clip(np.searchsorted(starts, np.arange(n_var), side="right") - 1, 0, len(starts) - 1)  # window of a site
    if engine not in ("auto", "fused", "torch"):
        raise ValueError(f"copying engine must be auto, fused or torch, got {engine!r}")
    on_cpu = str(device).split(":")[0] == "cpu"  # a torch.device or its name; no torch import to read it
    if engine == "fused" or (engine == "auto" and on_cpu):
        if not on_cpu:
            raise ValueError(f"the fused copying engine runs on CPU, not {device}")
        if n_slots < candidates.shape[2]:
            raise ValueError(f"copying.slots ({n_slots}) must be at least the candidates per window "
                             f"({candidates.shape[2]})")
        return slots_alt_prob_cpu(panel_hap, query_hap, obs_idx, candidates, switch, seg, li, ri, t,
                                  error=error, n_slots=n_slots, tolerance=readout_tolerance, threads=threads)
    import torch

    device = torch.device(device)
    switch = torch.as_tensor(switch, device=device)
    return _slots_alt_prob_torch(panel_hap, query_hap, obs_idx, candidates, switch, seg, li, ri, t, error=error,
                                 n_slots=n_slots, query_batch=query_batch, device=device)


def _slots_alt_prob_torch(panel_hap: np.ndarray, query_hap: np.ndarray, obs_idx: np.ndarray, candidates: np.ndarray,
                          switch: torch.Tensor, seg: np.ndarray, li: np.ndarray, ri: np.ndarray, t: np.ndarray, *,
                          error: float, n_slots: int, query_batch: int, device: torch.device) -> np.ndarray:
    """:func:`slots_alt_prob` as batched torch tensors (CPU or CUDA), from the layout it derives: the switch
    probabilities between array sites, each site's window and its bracketing array sites with the weight on the
    right one."""
    import torch

    n_var, n_q = query_hap.shape
    panel_obs = torch.as_tensor(np.ascontiguousarray(panel_hap[obs_idx]), device=device)       # (S, P)
    seg_obs_np = seg[obs_idx]
    obs_bounds = np.r_[0, np.flatnonzero(np.diff(seg_obs_np)) + 1, len(obs_idx)]  # array sites of each window's stretch
    li_t, ri_t = (torch.as_tensor(a, device=device) for a in (li, ri))
    t_t = torch.as_tensor(t, dtype=torch.float32, device=device)
    # the minor-allele carriers of the sites of each window's stretch (the sites whose slots are that window's)
    bounds = np.r_[0, np.flatnonzero(np.diff(seg)) + 1, n_var]
    carriers = minor_carriers(panel_hap, bounds=bounds)
    n_panel = panel_hap.shape[1]
    out = np.empty((n_var, n_q), dtype=np.float32)
    for q0 in range(0, n_q, query_batch):
        q1 = min(n_q, q0 + query_batch)
        slot_np, valid_np = slot_states(candidates[:, q0:q1], n_slots=n_slots)
        slot_hap = torch.as_tensor(slot_np, device=device)                         # (W, Q, M)
        valid = torch.as_tensor(valid_np, device=device)
        obs = torch.as_tensor(np.ascontiguousarray(query_hap[obs_idx, q0:q1].T), device=device)  # (Q, S)
        # the copied alleles, window stretch by window stretch (no sites x queries x slots index tensor)
        copied = torch.empty((q1 - q0, len(obs_idx), n_slots), dtype=panel_obs.dtype, device=device)
        for a0, a1 in zip(obs_bounds[:-1], obs_bounds[1:]):
            copied[:, a0:a1] = panel_obs[a0:a1][:, slot_hap[int(seg_obs_np[a0])]].permute(1, 0, 2)
        emission = torch.where(copied == obs[:, :, None], 1.0 - error, error).to(torch.float32)
        emission = emission * valid[:, None, :]
        post = _posteriors(emission, valid, switch)                                  # (Q, S, M)
        q, _, m = post.shape
        flat = torch.cat([post, post.new_zeros(q, post.shape[1], 1)], dim=2).reshape(q, -1)
        arange_m = torch.arange(m, device=device).expand(q, m).contiguous()
        for j0, j1, site, hap, alt_minor in carriers:
            g = int(seg[j0])
            if len(site) > _DENSE_READ_OUT * (j1 - j0) * m:
                # more minor-allele carriers than slots (a big panel): read the slots' own alleles instead
                tt = t_t[j0:j1][None, :, None]
                mass = post[:, li_t[j0:j1]] * (1.0 - tt) + post[:, ri_t[j0:j1]] * tt   # (Q, J, M)
                block = torch.as_tensor(np.ascontiguousarray(panel_hap[j0:j1]), device=device)
                alleles = block[:, slot_hap[g]].to(mass.dtype)                        # (J, Q, M)
                p = torch.einsum("qjm,jqm->qj", mass, alleles * valid)
                out[j0:j1, q0:q1] = p.clamp(0.0, 1.0).T.cpu().numpy()
                continue
            # where each panel column sits among this window's slots (m: not a state -> the zero column)
            slot = torch.full((q, n_panel + 1), m, dtype=torch.int64, device=device)
            slot.scatter_(1, torch.where(valid, slot_hap[g], n_panel), arange_m)
            slot[:, n_panel] = m
            j = torch.as_tensor(site + j0, device=device)
            col = slot[:, torch.as_tensor(hap, device=device)]                       # (Q, E)
            tt = t_t[j]
            mass = flat.gather(1, li_t[j] * (m + 1) + col) * (1.0 - tt) + flat.gather(1, ri_t[j] * (m + 1) + col) * tt
            minor = post.new_zeros(q, j1 - j0).index_add_(1, torch.as_tensor(site, device=device), mass)
            flip = torch.as_tensor(~alt_minor, device=device)
            out[j0:j1, q0:q1] = torch.where(flip, 1.0 - minor, minor).clamp(0.0, 1.0).T.cpu().numpy()
    return out
