"""Pretrain a small DNABERT by masked k-mer modelling on the DNA the branch has (no weights can be downloaded).

As in DNABERT, a masked token is always part of a contiguous span of ``k`` masked tokens:
overlapping k-mers share k - 1 bases, so masking one k-mer alone would let its
neighbours give it away. The result is a Hugging Face ``BertForMaskedLM`` directory
(``config.json``, ``model.safetensors``, ``vocab.txt``) that :func:`omicslm.crispr.models.load_encoder` reads.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from omicslm.crispr.fasta import iter_fasta
from omicslm.crispr.models import bert_config
from omicslm.crispr.tokenize import CLS, MASK, PAD, SEP, SPECIAL, dnabert_vocab, kmer_ids, write_vocab
from omicslm.io.atomic import atomic_open
from omicslm.train import TrainConfig, fit, to_device
from omicslm.train.device import set_seed
from omicslm.train.distributed import is_main_process
from omicslm.train.publish import replacing_dir

log = logging.getLogger(__name__)

IGNORE = -100  # label of unmasked positions (ignored by the cross-entropy)


def chunk_fasta(paths, *, k: int, max_len: int, min_kmers: int) -> np.ndarray:
    """Cut every record of ``paths`` into [CLS] k-mers [SEP] rows of at most ``max_len`` tokens.

    Non-ACGT characters (e.g. N runs of a genome fasta) split a record; pieces with fewer
    than ``min_kmers`` k-mers are dropped. Identical rows are kept once.

    Returns
    -------
    ndarray, int64, shape (n_rows, max_len), padded with [PAD]
    """
    width = max_len - 2
    rows: set[tuple[int, ...]] = set()
    for path in paths:
        for _, seq in iter_fasta(path):
            for piece in "".join(c if c in "ACGT" else " " for c in seq).split():
                ids = kmer_ids(piece, k, add_special=False)
                for start in range(0, len(ids), width):
                    chunk = ids[start:start + width]
                    if len(chunk) >= min_kmers:
                        rows.add(tuple(chunk))
    out = np.full((len(rows), max_len), PAD, dtype=np.int64)
    for i, chunk in enumerate(sorted(rows)):
        out[i, :len(chunk) + 2] = [CLS, *chunk, SEP]
    return out


def mask_spans(ids: torch.Tensor, *, k: int, mask_prob: float, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """DNABERT span masking: about ``mask_prob`` of the k-mer tokens, in spans of ``k``; 80/10/10 replacement.

    Parameters
    ----------
    ids : int64 (batch, tokens)

    Returns
    -------
    (inputs, labels) : int64 (batch, tokens); labels are ``-100`` where not masked.
    """
    maskable = ids >= len(SPECIAL)
    starts = (torch.rand(ids.shape, generator=generator) < mask_prob / k) & maskable
    masked = starts.clone()
    for shift in range(1, k):
        masked[:, shift:] |= starts[:, :-shift]
    masked &= maskable
    labels = torch.where(masked, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[masked & (roll < 0.8)] = MASK
    rand = masked & (roll >= 0.8) & (roll < 0.9)
    inputs[rand] = torch.randint(len(SPECIAL), len(dnabert_vocab(k)), ids.shape, generator=generator)[rand]
    return inputs, labels


def masked_lm_loss(model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked positions of a ``BertForMaskedLM``.

    The vocabulary projection (hidden x 4,101 for k = 6) runs on the masked positions
    only (~15% of tokens), not on every token as ``BertForMaskedLM(labels=...)`` does:
    that projection and its softmax dominate the cost of a small model on a CPU.

    inputs, labels : int64 (batch, tokens); labels ``-100`` where not masked.
    """
    hidden = model.bert(input_ids=inputs, attention_mask=(inputs != PAD).long()).last_hidden_state
    sel = labels != IGNORE
    logits = model.cls(hidden[sel])
    return torch.nn.functional.cross_entropy(logits.float(), labels[sel])


def split_dev(data: np.ndarray, *, dev_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random ``(dev, train)`` split of the rows of ``data``; dev holds at least one row."""
    perm = np.random.default_rng(seed).permutation(len(data))
    n_dev = max(1, int(round(dev_fraction * len(data))))
    return torch.from_numpy(data[perm[:n_dev]]), torch.from_numpy(data[perm[n_dev:]])


def write_encoder(model, out_dir: str | os.PathLike, *, k: int, summary: dict) -> Path:
    """Write the Hugging Face model directory ``out_dir`` atomically (written beside, then renamed).

    It holds the model's weights and config, ``vocab.txt`` and ``pretrain_summary.tsv``
    (one ``key<TAB>value`` row per item of ``summary``).
    """
    with replacing_dir(out_dir) as tmp:
        model.cpu().save_pretrained(str(tmp))
        write_vocab(tmp / "vocab.txt", k)
        with atomic_open(tmp / "pretrain_summary.tsv") as fh:
            fh.write("".join(f"{key}\t{value}\n" for key, value in summary.items()))
    return Path(out_dir)


def pretrain_encoder(fastas, out_dir: str | os.PathLike, work_dir: str | os.PathLike, *, k: int, hidden: int,
                     layers: int, heads: int, intermediate: int, max_len: int, dropout: float, mask_prob: float,
                     batch_size: int, batches_per_epoch: int, dev_fraction: float, train: dict,
                     threads: int = 1) -> dict:
    """Pretrain a BERT masked-k-mer model on the records of ``fastas``; write it to ``out_dir``.

    Parameters
    ----------
    fastas : list of path
        DNA to learn from (oligo library, 30mer contexts, any extra fasta).
    out_dir : path
        Receives the Hugging Face model directory (written beside, then renamed: atomic).
    work_dir : path
        Resumable checkpoints of :func:`omicslm.train.fit`.
    batches_per_epoch : int
        Batches per epoch (random with replacement), so a huge fasta still makes short epochs.
    train : dict
        :class:`omicslm.train.TrainConfig` options.

    Returns
    -------
    dict
        Trainer state (``best_metric`` = dev masked-token cross-entropy).
    """
    from transformers import BertForMaskedLM

    torch.set_num_threads(max(1, threads))
    cfg = TrainConfig.from_dict(train)
    data = chunk_fasta(fastas, k=k, max_len=max_len, min_kmers=k)
    if len(data) < 2:
        raise ValueError(f"only {len(data)} sequence chunks in {fastas}: too little DNA to pretrain on")
    dev, trn = split_dev(data, dev_fraction=dev_fraction, seed=cfg.seed)
    log.info("pretraining on %d chunks of <= %d tokens (%d held out)", len(trn), max_len, len(dev))
    set_seed(cfg.seed)  # the encoder's initial weights come from train.seed
    model = BertForMaskedLM(bert_config(k=k, hidden=hidden, layers=layers, heads=heads, intermediate=intermediate,
                                        max_len=max_len, dropout=dropout))
    gen = torch.Generator().manual_seed(cfg.seed + 10_000)
    dev_batches = [mask_spans(dev[i:i + batch_size], k=k, mask_prob=mask_prob, generator=gen)
                   for i in range(0, len(dev), batch_size)]

    def train_batches(epoch: int):
        g = torch.Generator().manual_seed(cfg.seed + epoch)
        out = []
        for _ in range(batches_per_epoch):
            rows = trn[torch.randint(len(trn), (batch_size,), generator=g)]
            out.append(mask_spans(rows, k=k, mask_prob=mask_prob, generator=g))
        return out

    def loss_fn(m, batch, epoch):
        inputs, labels = to_device(batch, next(m.parameters()).device)
        return masked_lm_loss(m, inputs, labels), {}

    def validate(m, epoch):
        device = next(m.parameters()).device
        total, n = 0.0, 0
        for inputs, labels in dev_batches:
            inputs, labels = inputs.to(device), labels.to(device)
            count = int((labels != IGNORE).sum())
            if count:
                total += float(masked_lm_loss(m, inputs, labels)) * count
                n += count
        return {"val_loss": total / max(n, 1)}

    run_config = {"k": k, "hidden": hidden, "layers": layers, "heads": heads, "intermediate": intermediate,
                  "max_len": max_len, "dropout": dropout, "mask_prob": mask_prob, "batch_size": batch_size,
                  "batches_per_epoch": batches_per_epoch, "train": train, "fastas": [str(f) for f in fastas]}
    started = time.perf_counter()
    state = fit(model, train_batches, loss_fn, validate, cfg, work_dir, run_config=run_config,
                steps_per_epoch=batches_per_epoch)
    if not is_main_process():  # under torchrun rank 0 writes the encoder
        return state
    write_encoder(model, out_dir, k=k, summary={"chunks": len(trn), "best_val_loss": state["best_metric"],
                                                "epochs": state["epochs_run"],
                                                "seconds": f"{time.perf_counter() - started:.1f}"})
    log.info("pretrained encoder written to %s (dev masked-k-mer loss %.4f; uniform guess would be %.2f)",
             out_dir, state["best_metric"], float(np.log(4 ** k)))
    return state
