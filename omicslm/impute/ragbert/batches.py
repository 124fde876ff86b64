"""Window tensors for the retrieval-augmented imputation model: features, masking, batches.

A *item* is one haplotype in one window (``windows.tsv`` of :func:`write_windows`).
Every item becomes a row of ``window_sites`` positions (short windows are padded) with

* an allele token per site: ``TOKEN_REF`` / ``TOKEN_ALT`` where the allele is shown to the
  model, ``TOKEN_MASK`` where it must be imputed, ``TOKEN_PAD`` beyond the window's end;
* site features computed from the **panel** haplotypes only (never from the queried
  haplotypes, which would leak): global ALT frequency, the ALT frequency in the item's
  population, hom-ref/het/hom-alt frequencies, and the position within the window scaled
  to [0, 1];
* the site's substitution class (layout ``TYPE``) and the item's population;
* optionally the alleles of its K retrieved panel haplotypes at every window site, and the
  ALT probability of the copying model over the retrieved candidates
  (:mod:`omicslm.impute.ragbert.copying`), computed from the query's array sites only.

Masking follows the test data: only genotyping-array sites are shown. While training, a
curriculum also shows a fraction of the other sites in early epochs (falling linearly to 0
at ``curriculum_epochs``), so the first epochs are an easier fill-in-the-gaps task.
Haplotypes always come in sample pairs (rows ``2i`` and ``2i + 1``), so the genotype head
can see both haplotypes of a sample in the same window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from omicslm.impute.ragbert.model_config import IGNORE, TOKEN_MASK, TOKEN_PAD

log = logging.getLogger(__name__)


@dataclass
class SiteStats:
    """Per-site frequencies computed from a set of panel samples.

    Attributes
    ----------
    af : ndarray, float32, shape (n_variants,)
        ALT frequency over the panel haplotypes.
    af_pop : ndarray, float32, shape (n_variants, n_pops)
        ALT frequency within each population (the global AF where a population has no
        panel sample).
    geno_freq : ndarray, float32, shape (n_variants, 3)
        hom-ref / het / hom-alt frequency over the panel samples.
    """

    af: np.ndarray
    af_pop: np.ndarray
    geno_freq: np.ndarray


def panel_site_stats(hap: np.ndarray, pop: np.ndarray, sample_idx: np.ndarray, n_pops: int) -> SiteStats:
    """Frequencies over the samples ``sample_idx`` only (the panel, never the queries).

    Parameters
    ----------
    hap : ndarray, int8, shape (n_variants, n_samples, 2)
    pop : ndarray, int, shape (n_samples,)
        Population index of every sample.
    sample_idx : ndarray, int, shape (n_panel,)
    n_pops : int
    """
    sub = hap[:, sample_idx, :]
    af = sub.mean(axis=(1, 2), dtype=np.float64)
    af_pop = np.repeat(af[:, None], n_pops, axis=1)
    for p in range(n_pops):
        members = pop[sample_idx] == p
        if members.any():
            af_pop[:, p] = sub[:, members, :].mean(axis=(1, 2), dtype=np.float64)
    g = sub.sum(axis=2)
    geno = np.stack([(g == k).mean(axis=1) for k in range(3)], axis=1)
    return SiteStats(af.astype(np.float32), af_pop.astype(np.float32), geno.astype(np.float32))


def curriculum_reveal(epoch: int, *, reveal_start: float, curriculum_epochs: int) -> float:
    """Fraction of non-array sites shown in ``epoch`` (0-based): linear from ``reveal_start`` to 0."""
    if curriculum_epochs <= 0:
        return 0.0
    return float(reveal_start * max(0.0, 1.0 - epoch / curriculum_epochs))


class WindowData:
    """Query haplotypes + panel + windows -> model batches.

    Parameters
    ----------
    windows : ndarray, int64, shape (n_windows, 2)
        ``[start, end)`` of every window.
    window_sites : int
        Row length (the longest window); shorter windows are padded.
    positions : ndarray, int64, shape (n_variants,)
    vtype : ndarray, int, shape (n_variants,)
    stats : SiteStats
        Frequencies from the panel samples.
    observed : ndarray, bool, shape (n_variants,)
        Array sites: shown to the model.
    query_hap : ndarray, int8, shape (n_variants, 2 * n_query_samples)
        Query haplotypes, column ``2 i + h`` = haplotype ``h`` of query sample ``i``. Only
        observed sites are read unless ``labels`` is true.
    query_pop : ndarray, int, shape (n_query_samples,)
    panel_hap : ndarray, int8, shape (n_variants, n_panel_haplotypes)
        Panel haplotypes that neighbours index into.
    panel_pop : ndarray, int, shape (n_panel_haplotypes,)
    neighbours : ndarray, int, shape (n_windows, n_query_haplotypes, k), optional
        Panel haplotype indices retrieved for each window and query haplotype.
    copy_prob : ndarray, float32, shape (n_variants, n_query_haplotypes), optional
        ALT probability of every query haplotype at every site under the copying model.
    labels : bool
        Whether ``query_hap`` is known everywhere (training/validation), so masked sites
        carry labels.
    """

    def __init__(self, *, windows, window_sites, positions, vtype, stats, observed, query_hap, query_pop,
                 panel_hap=None, panel_pop=None, neighbours=None, copy_prob=None, labels=True):
        self.windows = np.asarray(windows, dtype=np.int64)
        self.window_sites = int(window_sites)
        if (self.windows[:, 1] - self.windows[:, 0]).max() > self.window_sites:
            raise ValueError(f"a window is longer than window_sites={self.window_sites}")
        self.positions = np.asarray(positions, dtype=np.int64)
        self.vtype = np.asarray(vtype, dtype=np.int64)
        self.stats = stats
        self.observed = np.asarray(observed, dtype=bool)
        self.query_hap = np.asarray(query_hap, dtype=np.int8)
        self.query_pop = np.asarray(query_pop, dtype=np.int64)
        if self.query_hap.shape[1] != 2 * len(self.query_pop):
            raise ValueError(f"query_hap has {self.query_hap.shape[1]} columns for {len(self.query_pop)} samples")
        self.panel_hap = None if panel_hap is None else np.asarray(panel_hap, dtype=np.int8)
        self.panel_pop = None if panel_pop is None else np.asarray(panel_pop, dtype=np.int64)
        self.neighbours = None if neighbours is None else np.asarray(neighbours, dtype=np.int64)
        self.copy_prob = None if copy_prob is None else np.asarray(copy_prob, dtype=np.float32)
        if self.copy_prob is not None and self.copy_prob.shape != self.query_hap.shape:
            raise ValueError(f"copy_prob has shape {self.copy_prob.shape}, query_hap {self.query_hap.shape}")
        self.labels = labels
        self.n_windows = len(self.windows)
        self.n_query_samples = len(self.query_pop)

    def items(self) -> np.ndarray:
        """Every (window, query sample) pair, window-major. Returns int64 (n_items, 2)."""
        w, s = np.meshgrid(np.arange(self.n_windows), np.arange(self.n_query_samples), indexing="ij")
        return np.stack([w.ravel(), s.ravel()], axis=1)

    def batch(self, pairs: np.ndarray, *, reveal: float = 0.0, rng: np.random.Generator | None = None) -> dict:
        """Tensors for ``pairs`` (window, sample) -> rows for both haplotypes of each sample.

        Parameters
        ----------
        pairs : ndarray, int, shape (n_pairs, 2)
        reveal : float
            Fraction of non-observed sites shown as well (curriculum; training only).
        rng : numpy Generator, needed when ``reveal > 0``.

        Returns
        -------
        dict of torch tensors, with B = 2 * n_pairs and L = window_sites:
            ``tokens`` int64 (B, L); ``labels`` int64 (B, L) (IGNORE where no loss);
            ``features`` float32 (B, L, N_SITE_FEATURES); ``af`` float32 (B, L, 2) global and
            population AF; ``maf`` float32 (B, L); ``vtype`` int64 (B, L); ``pop`` int64 (B,);
            ``attention_mask`` int64 (B, L); ``sites`` int64 (B, L) site index (-1 = pad);
            ``hap`` int64 (B,) query haplotype column; with neighbours also ``ref_tokens``
            int64 (B, K, L), ``ref_features`` float32 (B, K, L, N_SITE_FEATURES),
            ``ref_pop`` int64 (B, K); with ``copy_prob`` also ``copy_prob`` float32 (B, L)
            (0.5 at padding).
        """
        pairs = np.asarray(pairs, dtype=np.int64)
        win = np.repeat(pairs[:, 0], 2)
        hap = (2 * pairs[:, 1][:, None] + np.arange(2)[None, :]).ravel()
        sample = hap // 2
        start, end = self.windows[win, 0], self.windows[win, 1]
        L = self.window_sites
        idx = start[:, None] + np.arange(L)[None, :]
        valid = idx < end[:, None]
        idx = np.where(valid, idx, start[:, None])  # any in-range site; padded away below

        alleles = self.query_hap[idx, hap[:, None]].astype(np.int64)
        shown = self.observed[idx] & valid
        if reveal > 0:
            shown |= valid & (rng.random(idx.shape) < reveal)
        tokens = np.where(shown, alleles, TOKEN_MASK)
        tokens = np.where(valid, tokens, TOKEN_PAD)
        if self.labels:
            labels = np.where(valid & ~shown, alleles, IGNORE)
        else:
            labels = np.full(idx.shape, IGNORE, dtype=np.int64)

        pop = self.query_pop[sample]
        features, af = self._features(idx, valid, pop[:, None])
        maf = np.minimum(af[..., 0], 1 - af[..., 0])
        out = {
            "tokens": tokens, "labels": labels, "features": features, "af": af, "maf": maf,
            "vtype": np.where(valid, self.vtype[idx], 0), "pop": pop,
            "attention_mask": valid.astype(np.int64), "sites": np.where(valid, idx, -1), "hap": hap,
        }
        if self.neighbours is not None:
            nb = self.neighbours[win, hap]  # (B, K)
            ref_alleles = self.panel_hap[idx[:, None, :], nb[:, :, None]].astype(np.int64)  # (B, K, L)
            out["ref_tokens"] = np.where(valid[:, None, :], ref_alleles, TOKEN_PAD)
            ref_pop = self.panel_pop[nb]
            out["ref_pop"] = ref_pop
            k = nb.shape[1]
            ref_feat, _ = self._features(np.repeat(idx[:, None, :], k, axis=1), valid[:, None, :], ref_pop[:, :, None])
            out["ref_features"] = ref_feat
        if self.copy_prob is not None:
            out["copy_prob"] = np.where(valid, self.copy_prob[idx, hap[:, None]], 0.5).astype(np.float32)
        import torch  # batches feed the network; the copying model alone builds none and imports no torch

        return {key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in out.items()}

    def _features(self, idx, valid, pop):
        """Site features for site indices ``idx`` (..., L) of items in populations ``pop`` (..., 1)."""
        st = self.stats
        af = st.af[idx]
        af_pop = st.af_pop[idx, pop]
        geno = st.geno_freq[idx]
        # Position within the window scaled to [0, 1]: physical spacing tells the model how
        # far apart sites are (linkage decays with distance), independently of window size.
        first = self.positions[idx[..., :1]]
        last_site = np.where(valid, idx, idx[..., :1]).max(axis=-1, keepdims=True)
        span = np.maximum(self.positions[last_site] - first, 1)
        relpos = ((self.positions[idx] - first) / span).astype(np.float32)
        features = np.concatenate([af[..., None], af_pop[..., None], geno, relpos[..., None]], axis=-1)
        features = np.where(np.asarray(valid)[..., None], features, 0.0).astype(np.float32)
        afs = np.stack([af, af_pop], axis=-1).astype(np.float32)
        return features, np.where(np.asarray(valid)[..., None], afs, 0.0).astype(np.float32)

    def iter_batches(self, pairs: np.ndarray, batch_size: int, *, reveal: float = 0.0,
                     rng: np.random.Generator | None = None) -> Iterator[dict]:
        """Batches of ``batch_size`` haplotype rows (``batch_size // 2`` sample pairs) over ``pairs``."""
        n_pairs = max(1, batch_size // 2)
        for i in range(0, len(pairs), n_pairs):
            yield self.batch(pairs[i:i + n_pairs], reveal=reveal, rng=rng)


class TrainEpochs:
    """Deterministic per-epoch training batches: ``TrainEpochs(...)(epoch)`` -> iterable of batches.

    Each epoch draws its own permutation of the (window, sample) pairs from
    ``numpy.random.default_rng([seed, epoch])`` and keeps the first ``pairs_per_epoch``
    (all when None), so a resumed run sees exactly the batches the killed run would have.
    """

    def __init__(self, data: WindowData, *, batch_size: int, pairs_per_epoch: int | None, seed: int,
                 reveal_start: float, curriculum_epochs: int):
        self.data = data
        self.batch_size = batch_size
        self.pairs = data.items()
        self.n_pairs = len(self.pairs) if not pairs_per_epoch else min(int(pairs_per_epoch), len(self.pairs))
        self.seed = seed
        self.reveal_start = reveal_start
        self.curriculum_epochs = curriculum_epochs

    def steps_per_epoch(self) -> int:
        """Batches per epoch."""
        per = max(1, self.batch_size // 2)
        return (self.n_pairs + per - 1) // per

    def __call__(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(len(self.pairs))[: self.n_pairs]
        reveal = curriculum_reveal(epoch, reveal_start=self.reveal_start, curriculum_epochs=self.curriculum_epochs)
        return self.data.iter_batches(self.pairs[order], self.batch_size, reveal=reveal, rng=rng)
