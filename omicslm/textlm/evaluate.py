"""Evaluate a trained LM: validation perplexity vs a unigram baseline and the untrained model, plus probes.

All three perplexities are scored on the SAME targets, so they compare directly:

* causal LM: every token of a validation block but the first (each predicted from its prefix);
* masked LM: ``mlm_probability`` of the tokens, chosen with a seeded generator and replaced by
  ``<mask>`` (no 80/10/10 noise at evaluation), each predicted from the rest of its block.

Unigram baseline: token frequencies of the train split, add-``alpha`` smoothed over the model
vocabulary. Untrained: the same architecture, freshly initialised with the training seed.
Probes: a sampled continuation of ``prompt`` (top-k / top-p, as the user's generation) for the
causal LM, the top-n fillers of each fill-mask text for the masked LM.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_open
from omicslm.textlm.chunking import iter_id_batches
from omicslm.textlm.tokenizer import load_tokenizer
from omicslm.textlm.train import build_model

log = logging.getLogger(__name__)

COLUMNS = ["dataset", "model", "objective", "parameters", "block_size", "eval_blocks", "eval_targets", "perplexity",
           "untrained_perplexity", "unigram_perplexity", "steps", "train_seconds", "probe", "output"]
MASK_PLACEHOLDER = "<mask>"


def unigram_logprobs(train_ds, vocab_size: int, *, alpha: float = 1.0, batch_rows: int = 1000) -> np.ndarray:
    """log p(token) of add-``alpha`` smoothed train-split frequencies, shape (vocab_size,), streamed."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    for ids in iter_id_batches(train_ds, batch_rows=batch_rows):
        counts += np.bincount(ids, minlength=vocab_size)[:vocab_size]
    counts += alpha
    return np.log(counts) - np.log(counts.sum())


def mlm_targets(blocks: np.ndarray, *, probability: float, seed: int) -> np.ndarray:
    """Boolean mask of the tokens to predict, shape (n_blocks, block_size); at least one per block."""
    rng = np.random.default_rng(seed)
    mask = rng.random(blocks.shape) < probability
    none = ~mask.any(axis=1)
    mask[np.flatnonzero(none), rng.integers(0, blocks.shape[1], none.sum())] = True
    return mask


def model_nll(model, blocks: np.ndarray, *, objective: str, targets: np.ndarray | None = None,
              mask_token_id: int | None = None, batch_size: int = 8) -> float:
    """Summed negative log-likelihood (nats) of the targets of ``blocks``, shape (n_blocks, block_size)."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            ids = torch.as_tensor(blocks[start:start + batch_size], dtype=torch.long, device=device)
            if objective == "clm":
                logp = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), dim=-1)
                total -= logp.gather(-1, ids[:, 1:, None]).sum().item()
            else:
                tmask = torch.as_tensor(targets[start:start + batch_size], device=device)
                logits = model(input_ids=ids.masked_fill(tmask, mask_token_id)).logits[tmask].float()
                total -= torch.log_softmax(logits, dim=-1).gather(-1, ids[tmask][:, None]).sum().item()
    return total


def generate_sample(model, tok, prompt: str, *, max_new_tokens: int, top_k: int, top_p: float, seed: int) -> str:
    """A sampled continuation of ``prompt`` (top-k then nucleus filtering), decoded; prompt included."""
    import torch

    torch.manual_seed(seed)
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, do_sample=True, top_k=top_k, top_p=top_p, max_new_tokens=max_new_tokens,
                         pad_token_id=tok.pad_token_id)
    return tok.decode(out[0], skip_special_tokens=True)


def fill_mask(model, tok, text: str, *, top_n: int) -> list[str]:
    """The ``top_n`` most likely fillers of the first ``<mask>`` in ``text``, best first."""
    import torch

    if MASK_PLACEHOLDER not in text:
        raise InputError("textlm.evaluate.fill_mask", f"probe has no {MASK_PLACEHOLDER}", record=repr(text))
    enc = tok(text.replace(MASK_PLACEHOLDER, tok.mask_token), return_tensors="pt")
    pos = (enc["input_ids"][0] == tok.mask_token_id).nonzero()[0, 0]
    with torch.no_grad():
        logits = model(**enc).logits[0, pos]
    words = [tok.decode([i]) for i in logits.topk(top_n).indices.tolist()]
    return [w.strip() or repr(w) for w in words]  # a bare newline or space shows as '\n' / ' '


_top_fillers = fill_mask  # write_samples' keyword of the same name (its config key) hides this function there


def _one_line(text: str) -> str:
    return " ".join(text.split())


def evaluate_lm(chunks_dir: str | os.PathLike, model_dir: str | os.PathLike, out_tsv: str | os.PathLike, *,
                objective: str, name: str, train_summary: str | os.PathLike | None = None,
                max_blocks: int | None = None, batch_size: int = 8, prompt: str = "", max_new_tokens: int = 40,
                top_k: int = 10, top_p: float = 0.95, fill_mask_texts=(), top_n: int = 5,
                unigram_alpha: float = 1.0, mlm_probability: float = 0.15, seed: int = 0, threads: int = 1) -> dict:
    """Score one trained model on the validation blocks and write a one-row TSV (columns :data:`COLUMNS`).

    Returns
    -------
    dict
        The row written.
    """
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    torch.set_num_threads(max(1, threads))
    tok = load_tokenizer(model_dir)
    cls = AutoModelForCausalLM if objective == "clm" else AutoModelForMaskedLM
    model = cls.from_pretrained(str(model_dir), local_files_only=True)
    chunks = datasets.load_from_disk(str(chunks_dir))
    val = chunks["validation"]
    if max_blocks is not None:
        val = val.select(range(min(len(val), max_blocks)))
    blocks = np.asarray(val.with_format("numpy")["input_ids"], dtype=np.int64)
    vocab = model.config.vocab_size
    targets, mask_id = None, None
    if objective == "clm":
        target_ids = blocks[:, 1:]
    else:
        targets = mlm_targets(blocks, probability=mlm_probability, seed=seed)
        target_ids, mask_id = blocks[targets], tok.mask_token_id
    n = target_ids.size
    uni = -unigram_logprobs(chunks["train"], vocab, alpha=unigram_alpha)[target_ids].sum()
    kw = dict(objective=objective, targets=targets, mask_token_id=mask_id, batch_size=batch_size)
    trained = model_nll(model, blocks, **kw)
    untrained = model_nll(build_model(objective, model.config, seed=seed), blocks, **kw)
    if objective == "clm":
        probe = prompt
        output = generate_sample(model, tok, prompt, max_new_tokens=max_new_tokens, top_k=top_k, top_p=top_p,
                                 seed=seed)
    else:
        probe = " | ".join(fill_mask_texts)
        output = " | ".join(" / ".join(fill_mask(model, tok, t, top_n=top_n)) for t in fill_mask_texts)
    summary = json.loads(Path(train_summary).read_text()) if train_summary else {}
    row = {"dataset": "validation", "model": name, "objective": objective,
           "parameters": sum(p.numel() for p in model.parameters()),
           "block_size": blocks.shape[1], "eval_blocks": len(blocks), "eval_targets": n,
           "perplexity": math.exp(trained / n), "untrained_perplexity": math.exp(untrained / n),
           "unigram_perplexity": math.exp(uni / n), "steps": summary.get("steps"),
           "train_seconds": summary.get("seconds"), "probe": _one_line(probe), "output": _one_line(output)}
    log.info("%s: perplexity %.1f (untrained %.1f, unigram %.1f) on %d targets; %s -> %s", name, row["perplexity"],
             row["untrained_perplexity"], row["unigram_perplexity"], n, row["probe"], row["output"])
    write_rows([row], out_tsv)
    return row


def write_rows(rows: list[dict], path: str | os.PathLike) -> None:
    """Write evaluation rows as a TSV with the :data:`COLUMNS` header."""
    import pandas as pd

    with atomic_open(path) as fh:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(fh, sep="\t", index=False, float_format="%.4g")


def combine_eval(tsvs, out_tsv: str | os.PathLike) -> None:
    """Concatenate per-model evaluation TSVs (validation rows, then the ``textlm.score`` rows of
    :func:`score_texts`) into ``results/textlm_eval.tsv``: one row per dataset and model, the columns of both."""
    import pandas as pd

    table = pd.concat([pd.read_csv(t, sep="\t") for t in tsvs], ignore_index=True)
    columns = COLUMNS + [c for c in SCORE_COLUMNS if c not in COLUMNS and c in table.columns]
    with atomic_open(out_tsv) as fh:
        table.reindex(columns=columns).to_csv(fh, sep="\t", index=False, float_format="%.4g")


SCORE_COLUMNS = ["dataset", "model", "objective", "files", "bytes", "tokens", "eval_targets", "perplexity",
                 "bits_per_byte", "unigram_perplexity", "unigram_bits_per_byte"]


def score_texts(files, chunks_dir: str | os.PathLike, model_dir: str | os.PathLike, out_tsv: str | os.PathLike, *,
                objective: str, name: str, dataset: str, block_size: int, batch_size: int = 8,
                unigram_alpha: float = 1.0, mlm_probability: float = 0.15, seed: int = 0, threads: int = 1,
                encoding_errors: str = "strict") -> dict:
    """Score a trained model (and the unigram baseline of its training split) on your own text files.

    The files (UTF-8, one document each) are tokenized with the model's tokenizer and cut into blocks of
    ``block_size`` tokens, one document after another (the remainder of a document is a shorter block). Scored are
    the same targets as :func:`evaluate_lm` scores on validation blocks: every token but a block's first (causal),
    or ``mlm_probability`` of them (masked). Besides perplexity, bits per byte: the summed negative log-likelihood
    in bits over the UTF-8 bytes of the scored tokens (byte-level BPE: each token is its own bytes), which compares
    across tokenizers. Writes one row (:data:`SCORE_COLUMNS`); InputError when the files hold no text to score.
    """
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from omicslm.textlm.corpus import read_text

    torch.set_num_threads(max(1, threads))
    files = [Path(f) for f in files]
    if not files:
        raise InputError(f"textlm.score.{dataset}", "no file to score")
    tok = load_tokenizer(model_dir)
    cls = AutoModelForCausalLM if objective == "clm" else AutoModelForMaskedLM
    model = cls.from_pretrained(str(model_dir), local_files_only=True)
    token_bytes = np.array([0 if t in tok.all_special_tokens else len(t)
                            for t in tok.convert_ids_to_tokens(list(range(len(tok))))], dtype=np.int64)
    blocks, n_bytes = [], 0
    for f in files:
        text = read_text(f, encoding_errors=encoding_errors)
        n_bytes += len(text.encode("utf-8"))
        ids = tok(text, add_special_tokens=False)["input_ids"]
        blocks += [ids[i:i + block_size] for i in range(0, len(ids), block_size) if len(ids[i:i + block_size]) > 1]
    if not blocks:
        raise InputError(files[0], f"no text to score in the {len(files)} file(s) of textlm.score.{dataset}")
    uni_lp = unigram_logprobs(datasets.load_from_disk(str(chunks_dir))["train"], model.config.vocab_size,
                              alpha=unigram_alpha)
    rng_seed = seed
    nll = uni = 0.0
    n_targets = scored_bytes = 0
    for length in sorted({len(b) for b in blocks}):  # blocks of one length score as one array
        same = np.array([b for b in blocks if len(b) == length], dtype=np.int64)
        if objective == "clm":
            targets, target_ids = None, same[:, 1:]
        else:
            targets = mlm_targets(same, probability=mlm_probability, seed=rng_seed)
            target_ids = same[targets]
            rng_seed += 1
        nll += model_nll(model, same, objective=objective, targets=targets, mask_token_id=tok.mask_token_id,
                         batch_size=batch_size)
        uni -= uni_lp[target_ids].sum()
        n_targets += target_ids.size
        scored_bytes += int(token_bytes[target_ids].sum())
    bits = 1 / math.log(2) / max(scored_bytes, 1)
    row = {"dataset": dataset, "model": name, "objective": objective, "files": len(files), "bytes": n_bytes,
           "tokens": int(sum(len(b) for b in blocks)), "eval_targets": n_targets,
           "perplexity": math.exp(nll / n_targets), "bits_per_byte": nll * bits,
           "unigram_perplexity": math.exp(uni / n_targets), "unigram_bits_per_byte": uni * bits}
    log.info("%s on %s (%d files, %d bytes): perplexity %.1f, %.3f bits/byte (unigram %.1f, %.3f)", name, dataset,
             len(files), n_bytes, row["perplexity"], row["bits_per_byte"], row["unigram_perplexity"],
             row["unigram_bits_per_byte"])
    import pandas as pd

    with atomic_open(out_tsv) as fh:
        pd.DataFrame([row], columns=SCORE_COLUMNS).to_csv(fh, sep="\t", index=False, float_format="%.4g")
    return row


def write_samples(models: dict, out_txt: str | os.PathLike, *, prompts=(), samples_per_prompt: int = 1,
                  max_new_tokens: int = 60, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  seed: int = 0, fill_mask: Sequence[str] = (), fill_mask_top: int = 5, threads: int = 1) -> str:
    """``results/textlm/samples.txt``: every causal LM's samples of ``prompts``, every masked LM's fillers.

    ``models``: name -> (model directory, objective "clm" or "mlm"). Sample i of a prompt is drawn with seed
    ``seed + i`` (temperature, then top-k, then nucleus filtering), so a rerun writes the same text.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    torch.set_num_threads(max(1, threads))
    parts = []
    for name, (model_dir, objective) in models.items():
        tok = load_tokenizer(model_dir)
        cls = AutoModelForCausalLM if objective == "clm" else AutoModelForMaskedLM
        model = cls.from_pretrained(str(model_dir), local_files_only=True).eval()
        if objective == "clm":
            for prompt in prompts:
                for i in range(samples_per_prompt):
                    torch.manual_seed(seed + i)
                    enc = tok(prompt, return_tensors="pt")
                    with torch.no_grad():
                        out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=top_k,
                                             top_p=top_p, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
                    text = tok.decode(out[0], skip_special_tokens=True)
                    parts.append(f"=== {name} (causal LM) | prompt {prompt!r} | sample {i + 1} (seed {seed + i})\n"
                                 f"{text}\n")
        else:
            for probe in fill_mask:
                fillers = _top_fillers(model, tok, probe, top_n=fill_mask_top)
                parts.append(f"=== {name} (masked LM) | probe {probe!r}\n{' / '.join(fillers)}\n")
        log.info("%s (%s): %s", name, objective, "sampled" if objective == "clm" else "fill-mask probes")
    text = "\n".join(parts) or "(no causal LM prompts and no masked LM probes configured)\n"
    with atomic_open(out_txt) as fh:
        fh.write(text)
    return text
