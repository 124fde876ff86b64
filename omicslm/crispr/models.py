"""Model zoo of the CRISPR branch: BERT encoder + regression head (LoRA / frozen / full) and a CRISPRon-like CNN.

Methods are named in config (``crispr.models.methods``) and built by :func:`build_model`
from a ``kind``:

* ``lora``: encoder frozen, LoRA adapters (``peft``) on the attention projections + head;
* ``frozen``: encoder frozen, only the dense head (``head_layers`` 1 or 3) trains;
* ``finetune``: every encoder weight and the head train;
* ``cnn``: CRISPRon-like convolutions on the one-hot 30mer (+ binding energy when given).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omicslm.crispr.methods import ENCODER_KINDS
from omicslm.crispr.tokenize import PAD, check_vocab_file, dnabert_vocab
from omicslm.errors import InputError

log = logging.getLogger(__name__)

NEURAL_KINDS = ("lora", "frozen", "finetune", "cnn")  # what build_model builds (gbm/stack: see methods.py)
BASES = "ACGT"


def bert_config(*, k: int, hidden: int, layers: int, heads: int, intermediate: int, max_len: int,
                dropout: float = 0.1):
    """A ``BertConfig`` for a DNABERT-k style encoder of the given size (vocab 5 + 4**k)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=len(dnabert_vocab(k)), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=max_len,
                      hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=PAD,
                      type_vocab_size=1)


def load_encoder(path: str | os.PathLike, k: int) -> nn.Module:
    """Load a Hugging Face ``BertModel`` (or the encoder of a ``BertForMaskedLM``) from a local directory.

    Raises
    ------
    InputError
        When the directory has no ``config.json`` or its ``vocab.txt`` is not the DNABERT-k vocabulary.
    """
    from transformers import BertModel

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(path, "not a Hugging Face checkpoint directory (no config.json)")
    if (path / "vocab.txt").is_file():
        check_vocab_file(path / "vocab.txt", k)
    model = BertModel.from_pretrained(str(path), add_pooling_layer=False)
    if model.config.vocab_size != len(dnabert_vocab(k)):
        raise InputError(path / "config.json", f"vocab_size {model.config.vocab_size} is not DNABERT-{k}'s "
                                               f"{len(dnabert_vocab(k))}")
    return model


def dense_head(n_in: int, n_layers: int, hidden: int, dropout: float) -> nn.Sequential:
    """``n_layers`` dense layers ending in one output: 1 = a linear map, more = ReLU MLP of width ``hidden``."""
    layers: list[nn.Module] = []
    for _ in range(n_layers - 1):
        layers += [nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout)]
        n_in = hidden
    layers.append(nn.Linear(n_in, 1))
    return nn.Sequential(*layers)


class EncoderRegressor(nn.Module):
    """BERT encoder -> pooled sequence vector (hidden,) -> dense head -> one efficiency per guide.

    ``forward(input_ids)``: input_ids int64 (batch, tokens) -> float (batch,).
    """

    def __init__(self, encoder: nn.Module, *, head_layers: int, head_hidden: int, dropout: float,
                 pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be mean or cls, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.head = dense_head(encoder.config.hidden_size, head_layers, head_hidden, dropout)

    def forward(self, input_ids: torch.Tensor, energy: torch.Tensor | None = None) -> torch.Tensor:
        mask = (input_ids != PAD).long()
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head(pooled).squeeze(-1)


class CNNRegressor(nn.Module):
    """CRISPRon-like CNN: parallel 1-D convolutions (widths ``kernels``) over the one-hot 30mer, dense layers.

    ``forward(onehot, energy)``: onehot float (batch, 4, length), energy float (batch,) or None -> (batch,).
    The binding energy (when ``use_energy``) joins the flattened features after the first
    ``energy_after`` dense layers (CRISPRon: after the first; default: after all, before the output).
    """

    def __init__(self, *, length: int, kernels: list[int], filters: list[int], dense: list[int], dropout: float,
                 use_energy: bool, energy_after: int | None = None):
        super().__init__()
        if len(kernels) != len(filters):
            raise ValueError(f"kernels {kernels} and filters {filters} must have the same length")
        energy_after = len(dense) if energy_after is None else energy_after
        if not 0 <= energy_after <= len(dense):
            raise ValueError(f"energy_after must be between 0 and the {len(dense)} dense layers, got {energy_after}")
        self.convs = nn.ModuleList(nn.Conv1d(len(BASES), f, kw) for kw, f in zip(kernels, filters))
        n_in = sum(f * (length - kw + 1) for kw, f in zip(kernels, filters))
        self.use_energy = use_energy
        before: list[nn.Module] = [nn.Dropout(dropout)]
        after: list[nn.Module] = []
        for i, width in enumerate(dense):
            if i == energy_after:
                n_in += int(use_energy)
            (before if i < energy_after else after).extend([nn.Linear(n_in, width), nn.ReLU(), nn.Dropout(dropout)])
            n_in = width
        self.body = nn.Sequential(*before)
        self.after_energy = nn.Sequential(*after)
        self.out = nn.Linear(n_in + int(use_energy and energy_after == len(dense)), 1)

    def forward(self, onehot: torch.Tensor, energy: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([torch.relu(conv(onehot)).flatten(1) for conv in self.convs], dim=1)
        x = self.body(x)
        if self.use_energy:
            x = torch.cat([x, energy.unsqueeze(-1)], dim=1)
        return self.out(self.after_energy(x)).squeeze(-1)


def one_hot(seqs) -> np.ndarray:
    """One-hot DNA: sequences of equal length L -> float32 (n, 4, L), channels in ``ACGT`` order."""
    arr = np.frombuffer("".join(seqs).encode(), dtype=np.uint8).reshape(len(seqs), -1)
    out = np.zeros((arr.shape[0], len(BASES), arr.shape[1]), dtype=np.float32)
    for c, base in enumerate(BASES):
        out[:, c] = arr == ord(base)
    return out


def build_model(method: dict, *, encoder_dir: str | os.PathLike | None, k: int, head_hidden: int, dropout: float,
                pooling: str, seq_length: int, use_energy: bool, encoder_config: dict | None = None) -> nn.Module:
    """Build the model of one method block (``kind`` and its options, see module docstring).

    The encoder kinds load the encoder from ``encoder_dir``, or, with ``encoder_config`` (a ``BertConfig`` dict),
    build it untrained for a kept member's weights to fill (:mod:`omicslm.crispr.kept`).
    """
    kind = method["kind"]
    if kind not in NEURAL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {NEURAL_KINDS}")
    if kind == "cnn":
        cnn = method.get("cnn") or {}
        return CNNRegressor(length=seq_length, kernels=list(cnn.get("kernels", [3, 5, 7])),
                            filters=list(cnn.get("filters", [100, 70, 40])), dense=list(cnn.get("dense", [80, 60])),
                            dropout=cnn.get("dropout", 0.3), use_energy=use_energy,
                            energy_after=cnn.get("energy_after"))
    if encoder_config is not None:
        from transformers import BertConfig, BertModel

        encoder = BertModel(BertConfig.from_dict(encoder_config), add_pooling_layer=False)
    else:
        encoder = load_encoder(encoder_dir, k)
    model = EncoderRegressor(encoder, head_layers=int(method.get("head_layers", 1)), head_hidden=head_hidden,
                             dropout=dropout, pooling=pooling)
    if kind in ("lora", "frozen"):
        for p in model.encoder.parameters():
            p.requires_grad_(False)
    if kind == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(r=int(method["r"]), lora_alpha=method.get("alpha", 16),
                          lora_dropout=method.get("lora_dropout", 0.05),
                          target_modules=list(method.get("target_modules", ["query", "key", "value", "dense"])),
                          bias="none")
        model.encoder = inject_adapter_in_model(lora, model.encoder)
        for name, p in model.encoder.named_parameters():
            p.requires_grad_("lora_" in name)
    return model


def count_trainable(model: nn.Module) -> int:
    """Number of parameters that receive gradients."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
