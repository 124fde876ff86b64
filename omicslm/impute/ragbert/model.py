"""The retrieval-augmented BERT imputation model: encoder, rare-variant fusion, heads, losses.

* Encoder: a Hugging Face :class:`transformers.BertModel` fed with ``inputs_embeds`` =
  allele-token + variant-type + population embeddings + a projection of the site features
  (BERT adds its own learned position-in-window embedding).
* Retrieved panel haplotypes (B, K, L) are encoded by the same encoder, in chunks of
  ``ref_chunk`` rows, under gradient checkpointing when training (activations of K
  references would otherwise dominate memory). ``ref_grad: false`` encodes them without
  gradient instead (the tiny CPU default: ~4x cheaper steps).
* :class:`RareVariantFusion`: a global x population AF interaction gives per-site adapter
  weights on the retrieved features, attention pooling with a learned query (or mean
  pooling, ablation) over the K references, an MLP on [own, pooled], scaled by the inverse
  MAF (clamped at ``max_inv_maf``: rare sites lean harder on retrieval), added to the own
  representation with ``residual_scale``.
* Copying prior (``copying``): the ALT probability of a Li-Stephens copying model over the
  retrieved candidates (:mod:`omicslm.impute.ragbert.copying`) is embedded into the query input and
  its log-odds, times a learned scale (initially 1), is added to the allele logits: the
  network starts from the copying model's answer and learns a correction from context,
  allele frequencies and population.
* Heads: allele logits per haplotype site; genotype class (0/1/2) per sample site from
  both haplotypes of a pair (rows 2i, 2i+1, see :mod:`omicslm.impute.ragbert.batches`).
* Losses on masked positions only: focal loss (``gamma = 0`` is cross-entropy) on alleles
  and genotypes, and a reconstruction MSE between the predicted ALT probability and the
  true allele (a Brier term: it rewards calibrated dosages, which r² measures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from omicslm.impute.ragbert.model_config import (IGNORE, N_SITE_FEATURES, N_TOKENS, TOKEN_ALT, TOKEN_MASK,  # noqa: F401
                                                 TOKEN_PAD, TOKEN_REF, ModelConfig)


class RareVariantFusion(nn.Module):
    """Fuse K retrieved haplotype representations into the query's, weighted by allele frequency.

    Parameters
    ----------
    hidden : int
    pooling : "attention" | "mean"
    max_inv_maf, residual_scale : float
    """

    def __init__(self, hidden: int, *, pooling: str, max_inv_maf: float, residual_scale: float):
        super().__init__()
        if pooling not in ("attention", "mean"):
            raise ValueError(f"pooling must be 'attention' or 'mean', got {pooling!r}")
        self.pooling = pooling
        self.max_inv_maf = max_inv_maf
        self.residual_scale = residual_scale
        # (global AF, population AF, their product) -> per-channel gate on retrieved features.
        self.af_adapter = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.query = nn.Parameter(torch.zeros(hidden))
        self.query_proj = nn.Linear(hidden, hidden)
        self.key_proj = nn.Linear(hidden, hidden)
        self.fuse = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, own: torch.Tensor, refs: torch.Tensor, af: torch.Tensor, maf: torch.Tensor) -> torch.Tensor:
        """
        Parameters
        ----------
        own : (B, L, H) query representation
        refs : (B, K, L, H) retrieved representations
        af : (B, L, 2) global and population ALT frequency
        maf : (B, L) panel minor-allele frequency

        Returns
        -------
        (B, L, H)
        """
        g, p = af[..., 0:1], af[..., 1:2]
        gate = torch.sigmoid(self.af_adapter(torch.cat([g, p, g * p], dim=-1)))  # (B, L, H)
        refs = refs * gate.unsqueeze(1)
        if self.pooling == "attention":
            # A learned query, shifted by the site's own context, scores each reference per site.
            q = self.query + self.query_proj(own)  # (B, L, H)
            scores = (self.key_proj(refs) * q.unsqueeze(1)).sum(-1) / math.sqrt(own.shape[-1])  # (B, K, L)
            weights = torch.softmax(scores, dim=1).unsqueeze(-1)
            pooled = (weights * refs).sum(dim=1)
        else:
            pooled = refs.mean(dim=1)
        fused = self.fuse(torch.cat([own, pooled], dim=-1))
        inv_maf = 1.0 / maf.clamp(min=1.0 / self.max_inv_maf)  # == min(1/maf, max_inv_maf)
        return self.norm(own + self.residual_scale * inv_maf.unsqueeze(-1) * fused)


class RagBert(nn.Module):
    """BERT over haplotype windows with optional retrieval fusion.

    ``forward(batch)`` takes the dict of :meth:`omicslm.impute.ragbert.batches.WindowData.batch`
    and returns ``allele_logits`` (B, L, 2), ``genotype_logits`` (B/2, L, 3) and
    ``hidden`` (B, L, H).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.token_emb = nn.Embedding(N_TOKENS, h, padding_idx=TOKEN_PAD)
        self.type_emb = nn.Embedding(cfg.n_types, h)
        self.pop_emb = nn.Embedding(cfg.n_pops, h)
        self.feature_proj = nn.Linear(N_SITE_FEATURES, h)
        # The retrieved haplotypes' ALT fraction per site, an input of the query only: the
        # copying signal enters before the encoder, so every layer can weigh it against context.
        self.vote_proj = nn.Linear(1, h) if cfg.retrieval and cfg.retrieved_vote else None
        self.copy_proj = nn.Linear(1, h) if cfg.retrieval and cfg.copying else None
        self.copy_scale = nn.Parameter(torch.ones(())) if self.copy_proj is not None else None
        from transformers import BertConfig, BertModel  # here: imputing with the copying model alone needs none of it

        self.encoder = BertModel(BertConfig(
            vocab_size=N_TOKENS, hidden_size=h, num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
            intermediate_size=cfg.intermediate, hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout, max_position_embeddings=cfg.window_sites,
            type_vocab_size=1,
        ), add_pooling_layer=False)
        self.fusion = (RareVariantFusion(h, pooling=cfg.pooling, max_inv_maf=cfg.max_inv_maf,
                                         residual_scale=cfg.residual_scale) if cfg.retrieval else None)
        self.allele_head = nn.Linear(h, 2)
        self.genotype_head = nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Linear(h, 3))

    def encode(self, tokens, features, vtype, pop, attention_mask, extra=None) -> torch.Tensor:
        """(N, L) inputs -> (N, L, H) contextual representations; ``extra`` (N, L, H) is added to the input."""
        x = (self.token_emb(tokens) + self.type_emb(vtype) + self.pop_emb(pop).unsqueeze(1)
             + self.feature_proj(features))
        if extra is not None:
            x = x + extra
        return self.encoder(inputs_embeds=x, attention_mask=attention_mask).last_hidden_state

    def encode_refs(self, batch) -> torch.Tensor:
        """Encode the (B, K, L) retrieved haplotypes with the same encoder -> (B, K, L, H)."""
        tok = batch["ref_tokens"]
        b, k, length = tok.shape
        tok = tok.reshape(b * k, length)
        feat = batch["ref_features"].reshape(b * k, length, -1)
        vtype = batch["vtype"].repeat_interleave(k, dim=0)
        pop = batch["ref_pop"].reshape(b * k)
        mask = batch["attention_mask"].repeat_interleave(k, dim=0)
        grad = self.cfg.ref_grad and torch.is_grad_enabled()
        if not grad:
            # Without gradient, a row's encoding depends on its inputs only: a panel haplotype that
            # several queries of the batch retrieved in one window is encoded once.
            key = torch.cat([tok.to(feat.dtype)[..., None], feat, vtype.to(feat.dtype)[..., None],
                             mask.to(feat.dtype)[..., None]], dim=-1).reshape(b * k, -1)
            key = torch.cat([key, pop.to(feat.dtype)[:, None]], dim=1)
            uniq, inverse = torch.unique(key, dim=0, return_inverse=True)
            first = torch.empty(len(uniq), dtype=torch.long, device=tok.device).scatter_(
                0, inverse, torch.arange(b * k, device=tok.device))
            if len(first) < b * k:
                enc = self._encode_chunks(tok[first], feat[first], vtype[first], pop[first], mask[first], grad=False)
                return enc[inverse].reshape(b, k, length, -1)
        return self._encode_chunks(tok, feat, vtype, pop, mask, grad=grad).reshape(b, k, length, -1)

    def _encode_chunks(self, tok, feat, vtype, pop, mask, *, grad: bool) -> torch.Tensor:
        """Encode (N, L) reference rows ``ref_chunk`` at a time -> (N, L, H)."""
        chunks = []
        step = max(1, self.cfg.ref_chunk)
        for i in range(0, tok.shape[0], step):
            args = (tok[i:i + step], feat[i:i + step], vtype[i:i + step], pop[i:i + step], mask[i:i + step])
            if not grad:
                # Stop-gradient: the shared encoder still learns through the query path, at
                # about a quarter of the backward cost (K references per query).
                with torch.no_grad():
                    chunks.append(self.encode(*args))
            elif self.training and self.cfg.ref_checkpointing:
                chunks.append(checkpoint(self.encode, *args, use_reentrant=False))
            else:
                chunks.append(self.encode(*args))
        return torch.cat(chunks)

    def forward(self, batch) -> dict:
        if self.fusion is not None and "ref_tokens" not in batch:
            raise ValueError("this model uses retrieval but the batch has no retrieved haplotypes")
        extra = None
        if self.vote_proj is not None:
            vote = (batch["ref_tokens"] == TOKEN_ALT).float().mean(dim=1)  # (B, L)
            extra = self.vote_proj(vote.unsqueeze(-1).to(self.vote_proj.weight.dtype))
        prior = None
        if self.copy_proj is not None:
            if "copy_prob" not in batch:
                raise ValueError("this model uses the copying prior but the batch has no copy_prob")
            p = batch["copy_prob"].float()
            c = self.copy_proj(p.unsqueeze(-1).to(self.copy_proj.weight.dtype))
            extra = c if extra is None else extra + c
            clip = self.cfg.copy_prior_clip
            prior = torch.logit(p.clamp(clip, 1.0 - clip))  # (B, L) log-odds of ALT
        own = self.encode(batch["tokens"], batch["features"], batch["vtype"], batch["pop"], batch["attention_mask"],
                          extra)
        if self.fusion is not None:
            own = self.fusion(own, self.encode_refs(batch), batch["af"], batch["maf"])
        logits = self.allele_head(own)
        if prior is not None:
            # log-odds of ALT vs REF = head's + scale * copying model's
            logits = logits + torch.stack([torch.zeros_like(prior), self.copy_scale * prior], dim=-1).to(logits.dtype)
        out = {"hidden": own, "allele_logits": logits}
        if own.shape[0] % 2 == 0:
            h0, h1 = own[0::2], own[1::2]
            # Symmetric in the two haplotypes: a genotype does not depend on their order.
            out["genotype_logits"] = self.genotype_head(torch.cat([h0 + h1, h0 * h1], dim=-1))
        return out


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean focal loss over positions whose label is not IGNORE; ``gamma = 0`` is cross-entropy.

    Parameters
    ----------
    logits : (..., C) float
    labels : (...) int64, IGNORE where no loss
    gamma : float
        Focusing exponent: the per-position CE is multiplied by ``(1 - p_true) ** gamma``.

    Returns
    -------
    scalar tensor (0 when nothing is labelled)
    """
    keep = labels != IGNORE
    if not keep.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[keep].float(), dim=-1)
    logp_true = logp.gather(-1, labels[keep].unsqueeze(-1)).squeeze(-1)
    ce = -logp_true
    if gamma:
        ce = ce * (1.0 - logp_true.exp()).clamp(min=0.0) ** gamma
    return ce.mean()


@dataclass
class LossWeights:
    """Weights of the three loss terms and the focal exponent."""

    allele: float = 1.0
    genotype: float = 0.5
    reconstruction: float = 0.5
    focal_gamma: float = 0.0


def model_loss(out: dict, labels: torch.Tensor, w: LossWeights) -> tuple[torch.Tensor, dict]:
    """Weighted loss on masked positions; returns (loss, {term: float}).

    ``labels`` int64 (B, L) alleles with IGNORE at shown/pad positions. The genotype target
    of a pair is the sum of its two allele labels where both are masked.
    """
    logits = out["allele_logits"]
    allele = focal_loss(logits, labels, w.focal_gamma)
    keep = labels != IGNORE
    p_alt = torch.softmax(logits.float(), dim=-1)[..., 1]
    recon = ((p_alt - labels.clamp(min=0).float()) ** 2)[keep].mean() if keep.any() else logits.sum() * 0.0
    loss = w.allele * allele + w.reconstruction * recon
    logs = {"allele_loss": float(allele.detach()), "recon_mse": float(recon.detach())}
    if "genotype_logits" in out and w.genotype:
        l0, l1 = labels[0::2], labels[1::2]
        geno = torch.where((l0 != IGNORE) & (l1 != IGNORE), l0 + l1, torch.full_like(l0, IGNORE))
        gl = focal_loss(out["genotype_logits"], geno, w.focal_gamma)
        loss = loss + w.genotype * gl
        logs["genotype_loss"] = float(gl.detach())
    return loss, logs
