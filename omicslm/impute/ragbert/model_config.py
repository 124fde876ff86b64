"""What a ragbert checkpoint records about its network, and the allele tokens, without importing torch.

The imputation of the copying model alone reads a checkpoint's :class:`ModelConfig` (its window length, whether
it has a copying model) and builds windows of tokens, but runs no network: keeping these here lets that process
start without torch's import (about 2 s). :mod:`omicslm.impute.ragbert.model` re-exports all of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

#: Allele tokens (the model's vocabulary).
TOKEN_REF, TOKEN_ALT, TOKEN_MASK, TOKEN_PAD = 0, 1, 2, 3
N_TOKENS = 4

#: Label value of positions that carry no loss (shown alleles, padding).
IGNORE = -100

#: Site feature columns: global AF, population AF, 3 genotype frequencies, relative position.
N_SITE_FEATURES = 6


@dataclass
class ModelConfig:
    """Architecture; stored in every checkpoint so a checkpoint rebuilds its model alone."""

    window_sites: int          # row length L (sites per window)
    n_types: int               # variant-type vocabulary (layout TYPE_NAMES)
    n_pops: int                # populations in the panel
    hidden: int = 64           # BERT hidden size
    layers: int = 2            # transformer layers
    heads: int = 2             # attention heads
    intermediate: int = 256    # feed-forward size
    dropout: float = 0.1       # hidden and attention dropout
    retrieval: bool = True     # False = plain BERT (ablation)
    pooling: str = "attention"  # "attention" (learned query) or "mean" (ablation) over K references
    k: int = 3                 # retrieved haplotypes per query
    max_inv_maf: float = 10.0  # clamp of the inverse-MAF fusion scale
    residual_scale: float = 0.1  # weight of the fused retrieval signal in the residual
    ref_chunk: int = 256       # reference rows encoded per chunk
    ref_grad: bool = True      # backpropagate through the reference encoding (False: encode refs without grad)
    ref_checkpointing: bool = True  # gradient checkpointing of reference encoding when training with ref_grad
    retrieved_vote: bool = False  # also embed, per site, the ALT fraction among the K retrieved haplotypes
    copying: bool = False      # the batch carries the copying model's ALT probability (input + logit prior)
    copy_prior_clip: float = 1e-4  # that probability is clipped to [clip, 1 - clip] before its log-odds

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown model config key(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
