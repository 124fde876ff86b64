"""Encoder-only cell transformer over (gene, count-bin) tokens, its count heads and its losses.

Token embedding = gene embedding + value embedding (a count bin, [MASK] or padding), as in the
seed; no positional embedding, since genes form a set (and a position would reveal whether a
gene was drawn as expressed or as a zero). Three count heads give log-probabilities over the
bins, so every loss reports the same masked-count negative log-likelihood:

* ``ce`` — the seed's softmax over bins (ignores their order);
* ``ordinal`` — cumulative-link (proportional-odds) model: one score ``s`` per token and
  ordered cut-points ``theta``, P(bin <= k) = sigmoid(theta_k - s);
* ``gaussian`` — regression on the bin value with a learned spread: a Gaussian over the bin
  index discretised onto the bins (logits -(k - mu)^2 / (2 sigma^2)).

The cell embedding is the mean of the final hidden states over a cell's (non-padding) tokens;
the CLIP loss pulls the two views of a cell together against the other cells of the batch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omicslm.scrna.tokenize import PAD

HEADS = ("ce", "ordinal", "gaussian")
IGNORE = -100  # label of positions that are not scored


@dataclass
class ModelConfig:
    """Sizes of the cell transformer (``scrna.model`` in config); saved with every checkpoint."""

    vocab_size: int                # gene ids, specials included (from the tokenized data)
    n_bins: int                    # count bins (from the binning)
    d_model: int = 256             # the seed: 256
    heads: int = 8                 # the seed: 8
    ffn: int = 1024                # the seed: 1024
    layers: int = 4                # the seed: 4
    dropout: float = 0.0
    norm_first: bool = True        # pre-LayerNorm: trains stably at lr 1e-3 without a long warmup
    head: str = "ce"               # ce | ordinal | gaussian
    proj_dim: int = 128            # CLIP projection size

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"unknown count head {self.head!r}; expected one of {', '.join(HEADS)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class CountHead(nn.Module):
    """Hidden states of masked tokens -> log-probabilities over ``n_bins`` bins."""

    def __init__(self, kind: str, d_model: int, n_bins: int):
        super().__init__()
        self.kind, self.n_bins = kind, n_bins
        if kind == "ce":
            self.out = nn.Linear(d_model, n_bins)
        elif kind == "ordinal":
            self.out = nn.Linear(d_model, 1)
            self.first_cut = nn.Parameter(torch.zeros(()))
            # softplus(0.54) = 1: cut-points start one logit apart
            self.cut_gaps = nn.Parameter(torch.full((n_bins - 2,), 0.5413)) if n_bins > 2 else None
        else:
            self.out = nn.Linear(d_model, 2)
            self.register_buffer("bins", torch.arange(n_bins, dtype=torch.float32), persistent=False)

    @torch.no_grad()
    def init_from_marginal(self, freq) -> None:
        """Start at the training cells' overall bin distribution ``freq`` (n_bins,) instead of uniform.

        Without it the ordinal head starts with cut-points one logit apart, so a high bin costs
        tens of nats and takes thousands of steps to reach; every head gets the same start.
        """
        freq = torch.as_tensor(freq, dtype=torch.float64)
        freq = (freq + 1e-6) / (freq + 1e-6).sum()
        if self.kind == "ce":
            self.out.weight.mul_(0.1)  # a small start keeps the first steps near the marginal
            self.out.bias.copy_(freq.log().float())
        elif self.kind == "gaussian":
            bins = torch.arange(self.n_bins, dtype=torch.float64)
            mean = float((freq * bins).sum())
            std = float(((freq * (bins - mean) ** 2).sum()).sqrt().clamp_min(0.5))
            self.out.weight.mul_(0.1)
            self.out.bias.copy_(torch.tensor([mean, math.log(std)], dtype=torch.float32))
        elif self.n_bins > 1:
            cdf = freq.cumsum(0)[:-1].clamp(1e-4, 1 - 1e-4)
            cuts = torch.log(cdf / (1 - cdf))
            gaps = cuts.diff().clamp_min(1e-2)
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
            self.first_cut.copy_(cuts[0].float())
            if self.cut_gaps is not None:
                self.cut_gaps.copy_(torch.log(torch.expm1(gaps)).float())  # softplus inverse

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h : float (n, d_model) -> log-probabilities, float32 (n, n_bins)."""
        out = self.out(h).float()
        if self.kind == "ce":
            return F.log_softmax(out, dim=-1)
        if self.kind == "gaussian":
            mu, log_sigma = out[:, :1], out[:, 1:].clamp(-5.0, 5.0)
            return F.log_softmax(-0.5 * ((self.bins - mu) / log_sigma.exp()) ** 2, dim=-1)
        return self._ordinal(out)

    def _ordinal(self, score: torch.Tensor) -> torch.Tensor:
        if self.n_bins == 1:
            return torch.zeros_like(score)
        gaps = F.softplus(self.cut_gaps.float()) if self.cut_gaps is not None else score.new_zeros(0)
        cuts = self.first_cut.float() + torch.cat([gaps.new_zeros(1), gaps.cumsum(0)])  # (n_bins - 1,)
        a = cuts - score  # (n, n_bins - 1): logit of P(bin <= k)
        log_le, log_gt = F.logsigmoid(a), F.logsigmoid(-a)
        # P(k) = sigmoid(a_k) - sigmoid(a_{k-1}) = sigmoid(a_k) sigmoid(-a_{k-1}) (1 - exp(-(a_k - a_{k-1})))
        middle = log_le[:, 1:] + log_gt[:, :-1] + torch.log(-torch.expm1(-gaps.clamp_min(1e-6)))
        return torch.cat([log_le[:, :1], middle, log_gt[:, -1:]], dim=1)


class CellTransformer(nn.Module):
    """Gene + value embeddings -> ``layers`` transformer encoder layers -> count head / cell embedding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.mask_value = cfg.n_bins          # value id of a masked count
        self.pad_value = cfg.n_bins + 1       # value id at padding
        self.gene_emb = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=PAD)
        self.value_emb = nn.Embedding(cfg.n_bins + 2, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ffn, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=cfg.norm_first)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.head = CountHead(cfg.head, cfg.d_model, cfg.n_bins)
        self.proj = nn.Linear(cfg.d_model, cfg.proj_dim)

    def forward(self, genes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """genes, values : int64 (batch, seq_len) -> hidden states, (batch, seq_len, d_model)."""
        x = self.gene_emb(genes) + self.value_emb(values)
        return self.final_norm(self.encoder(x, src_key_padding_mask=genes == PAD))

    def embed(self, genes: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Mean-pooled cell embedding over non-padding tokens, float32 (batch, d_model)."""
        return mean_pool(self(genes, values), genes != PAD)


def mean_pool(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """hidden (b, l, d), keep bool (b, l) -> mean over kept tokens, float32 (b, d)."""
    w = keep.unsqueeze(-1).float()
    return (hidden.float() * w).sum(1) / w.sum(1).clamp_min(1.0)


def clip_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between two views: row i of ``z1`` should match row i of ``z2``.

    z1, z2 : float (n_cells, dim), unnormalised projections. Chance level is log(n_cells).
    """
    z1, z2 = F.normalize(z1.float(), dim=-1), F.normalize(z2.float(), dim=-1)
    logits = z1 @ z2.T / temperature
    target = torch.arange(len(z1), device=z1.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def masked_count_nll(model: CellTransformer, hidden: torch.Tensor, labels: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities at the scored positions and their mean negative log-likelihood.

    hidden : (b, l, d); labels : int64 (b, l), a bin at masked positions, ``IGNORE`` elsewhere.

    Returns
    -------
    nll : scalar tensor (0 when nothing is masked)
    log_probs : float32 (n_masked, n_bins)
    targets : int64 (n_masked,)
    """
    sel = labels != IGNORE
    targets = labels[sel]
    log_probs = model.head(hidden[sel])
    if len(targets) == 0:
        return hidden.sum() * 0.0, log_probs, targets
    return F.nll_loss(log_probs, targets), log_probs, targets


def training_loss(model: CellTransformer, batch: dict, *, clip_weight: float, temperature: float
                  ) -> tuple[torch.Tensor, dict]:
    """Masked-count NLL over both views (+ ``clip_weight`` x CLIP loss between them).

    batch : ``genes``, ``values``, ``labels`` int64 (n_cells * 2, seq_len), views interleaved
    (rows 2i and 2i + 1 are the views of cell i).
    """
    hidden = model(batch["genes"], batch["values"])
    nll, _, _ = masked_count_nll(model, hidden, batch["labels"])
    logs = {"masked_nll": float(nll.detach())}
    loss = nll
    if clip_weight > 0:
        z = model.proj(mean_pool(hidden, batch["genes"] != PAD))
        cl = clip_loss(z[0::2], z[1::2], temperature)
        loss = loss + clip_weight * cl
        logs["clip"] = float(cl.detach())
        logs["clip_chance"] = math.log(max(len(z) // 2, 1))
    return loss, logs
