"""Pretrain GPT-2 (causal LM) or RoBERTa (masked LM) on the chunked corpus with Hugging Face ``Trainer``.

``Trainer`` rather than :mod:`omicslm.train.loop`: the user's recipe is a ``TrainingArguments``
set (per-device batch, gradient accumulation, step-based eval/log/save with
``save_total_limit``, cosine + warmup, TensorBoard), so the config's ``train`` block passes to
``TrainingArguments`` key for key, and the shared loop is epoch/early-stopping based. Trainer
gives resume (``resume_from_checkpoint`` = the last complete ``checkpoint-N`` in ``work_dir``,
see :func:`last_complete_checkpoint`), bf16 on CUDA and TensorBoard logs (``work_dir/tensorboard``).

Only a run of the same config is resumed: ``work_dir/run_config.json`` records what the
checkpoints were trained with (model, objective, every ``TrainingArguments`` key, masking, the
chunked data's fingerprint). A longer run (``max_steps`` / ``num_train_epochs`` raised; or the
eval/log/save cadence changed) continues from the last checkpoint, as Trainer users expect; any
other change sets the old checkpoints aside in ``work_dir/previous_config/`` and trains anew —
otherwise a rerun after, say, a learning-rate change would resume the finished old run and save
the old model under the new config.

Outputs: ``out_dir/model/`` (``save_pretrained`` weights + config + tokenizer, atomic),
``out_dir/history.tsv`` (Trainer's log history: step, loss, eval_loss, learning_rate, ...).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from omicslm.errors import InputError
from omicslm.io.atomic import atomic_dir, atomic_open
from omicslm.textlm.tokenizer import load_tokenizer
from omicslm.train.run_config import jsonable, set_aside_previous_run

log = logging.getLogger(__name__)

OBJECTIVES = ("clm", "mlm")
# TrainingArguments keys a resumed run may change: run length and bookkeeping cadence, not what a step computes
CONTINUATION_KEYS = ("max_steps", "num_train_epochs", "eval_steps", "logging_steps", "save_steps",
                     "save_total_limit", "per_device_eval_batch_size")
# RoBERTa numbers positions pad_token_id + 1 ... (roberta-base: 514 positions for 512 tokens, pad id 1)
ROBERTA_POSITION_OFFSET = 2


def model_config(objective: str, tok, *, block_size: int, overrides: dict | None = None, source: str = "model"):
    """The ``GPT2Config`` / ``RobertaConfig`` of ``overrides`` (tiny or full), fitted to ``tok`` and ``block_size``.

    ``vocab_size`` defaults to the tokenizer's size and the position table to ``block_size``;
    values given in ``overrides`` that cannot hold the tokenizer or a block raise InputError.
    """
    from transformers import GPT2Config, RobertaConfig

    overrides = dict(overrides or {})
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    vocab = overrides.setdefault("vocab_size", len(tok))
    if vocab < len(tok):
        raise InputError(source, f"model vocabulary ({vocab} ids) is smaller than the tokenizer's ({len(tok)} ids)",
                         record="vocab_size")
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    if objective == "clm":
        positions = overrides.setdefault("n_positions", block_size)
        if positions < block_size:
            raise InputError(source, f"n_positions {positions} < block_size {block_size}", record="n_positions")
        return GPT2Config(**{**ids, **overrides})
    need = block_size + tok.pad_token_id + 1
    positions = overrides.setdefault("max_position_embeddings", max(need, block_size + ROBERTA_POSITION_OFFSET))
    if positions < need:
        raise InputError(source, f"max_position_embeddings {positions} < block_size {block_size} + pad id "
                                 f"{tok.pad_token_id} + 1 (RoBERTa numbers positions after the pad id)",
                         record="max_position_embeddings")
    return RobertaConfig(**{**ids, **overrides})


def build_model(objective: str, config, *, seed: int):
    """A freshly initialised ``GPT2LMHeadModel`` or ``RobertaForMaskedLM`` (seeded)."""
    import torch
    from transformers import GPT2LMHeadModel, RobertaForMaskedLM

    torch.manual_seed(seed)
    return (GPT2LMHeadModel if objective == "clm" else RobertaForMaskedLM)(config)


def check_ids_fit(ds, vocab_size: int, source) -> None:
    """InputError when the chunked data holds ids the model vocabulary lacks (tokenizer mismatch)."""
    import pyarrow.compute as pc

    top = pc.max(pc.list_flatten(ds.data.column("input_ids"))).as_py()
    if top is not None and top >= vocab_size:
        raise InputError(source, f"token id {top} >= model vocabulary {vocab_size}: the chunks were made "
                                 "with another tokenizer")


def _complete(folder: Path, step: int) -> bool:
    """Whether Trainer finished ``folder``: weights present and ``trainer_state.json`` (written last) at ``step``.

    A ``trainer_state.json`` that exists but does not parse counts as finished here and as unreadable
    in :func:`checkpoint_problem` (quarantined, not deleted).
    """
    state_file = folder / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text())
    except ValueError:
        return state_file.is_file()
    except OSError:
        return False
    weights = any((folder / w).is_file() for w in ("model.safetensors", "model.safetensors.index.json"))
    return weights and state.get("global_step") == step


def checkpoint_problem(folder: Path) -> str | None:
    """What makes a finished Trainer checkpoint unreadable, or None: every file is checked without loading it.

    ``*.json`` must parse; torch files (``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``,
    ``training_args.bin``: zip archives) must pass the zip CRC check; ``*.safetensors`` must have a
    readable header whose tensors end exactly at the file's end (a truncated or garbled file fails).
    """
    import zipfile

    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        try:
            if f.suffix == ".json":
                json.loads(f.read_text())
            elif f.suffix in (".pt", ".pth", ".bin"):
                if not zipfile.is_zipfile(f):
                    return f"{f.name}: not a torch archive (truncated or garbled)"
                with zipfile.ZipFile(f) as z:
                    bad = z.testzip()
                if bad is not None:
                    return f"{f.name}: member {bad} fails its CRC check"
            elif f.suffix == ".safetensors":
                problem = _safetensors_problem(f)
                if problem:
                    return f"{f.name}: {problem}"
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            return f"{f.name}: {exc}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """None when the safetensors header parses and its tensors span the rest of the file exactly."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "shorter than a safetensors header"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return "header longer than the file (truncated or garbled)"
        header = json.loads(fh.read(n))
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    if max(ends, default=0) != size - 8 - n:
        return f"tensors need {max(ends, default=0)} bytes, the file holds {size - 8 - n} (truncated)"
    return None


def last_complete_checkpoint(work_dir: str | os.PathLike, *, fix: bool = True) -> str | None:
    """The newest ``checkpoint-N`` Trainer finished writing and that reads back; the newer ones are set aside.

    Trainer writes a checkpoint in place (weights, optimizer, RNG, then ``trainer_state.json``),
    so a job killed while saving leaves a partial folder that ``get_last_checkpoint`` would pick
    and resuming would fail on. Those are deleted (with a warning); a finished checkpoint with an
    unreadable file (:func:`checkpoint_problem`: a truncated or garbled weights, optimizer, RNG,
    scheduler or trainer-state file) is moved to ``work_dir/quarantine/`` with a warning. Training
    resumes from the previous good checkpoint (``save_total_limit`` rotation only removes old
    checkpoints after a new one is complete, so one is still there), or starts over.

    ``fix``: delete and move (rank 0 of a multi-process run; the others call it with ``fix=False``
    after rank 0 is done, and only skip what is bad, so no two processes touch the same folder).
    """
    import re
    import shutil

    from omicslm.train.run_setup import quarantine

    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in work_dir.iterdir()
                   if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    for step, folder in reversed(found):
        if not _complete(folder, step):
            if fix:
                log.warning("removing incomplete checkpoint %s (interrupted while saving)", folder)
                shutil.rmtree(folder)
            continue
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        if fix:
            quarantine(folder, problem, then="resuming from the previous checkpoint, if any")
    return None


def keep_only_same_config(work_dir: Path, run_config: dict) -> None:
    """Set aside ``work_dir``'s checkpoints when they were trained with another config; record ``run_config``."""
    path = work_dir / "run_config.json"
    runs = [p.name for p in work_dir.glob("checkpoint-*")] if work_dir.is_dir() else []
    if runs:
        saved = json.loads(path.read_text()) if path.is_file() else None
        if saved != run_config:
            set_aside_previous_run(work_dir, saved, run_config, names=(*runs, "tensorboard", "run_config.json"))
    work_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        json.dump(run_config, fh, indent=1)


def train_lm(chunks_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
             work_dir: str | os.PathLike, objective: str, model: dict | None = None, training: dict,
             mlm_probability: float = 0.15, max_eval_blocks: int | None = None, threads: int = 1,
             name: str = "model") -> dict:
    """Train one language model from scratch (or resume it) and save it.

    Parameters
    ----------
    chunks_dir : path
        ``DatasetDict`` with ``train``/``validation`` ``input_ids`` blocks, shape (n_blocks, block_size).
    tokenizer_dir : path
        The tokenizer the chunks were made with (saved beside the model).
    out_dir : path
        Receives ``model/`` and ``history.tsv``.
    work_dir : path
        Trainer's ``output_dir``: ``checkpoint-N/`` folders (resumed from) and ``tensorboard/``.
    objective : {"clm", "mlm"}
    model : dict
        ``GPT2Config`` / ``RobertaConfig`` keyword overrides (tiny default, GPT-2 124M in full).
    training : dict
        ``TrainingArguments`` keywords (batch sizes, lr, schedule, warmup, steps, ...); ``seed`` included.
    mlm_probability : float
        Fraction of tokens masked for the MLM (0.15, as BERT/RoBERTa).
    max_eval_blocks : int, optional
        Validation blocks used for the periodic eval loss (None = all).
    threads : int
        CPU threads for torch.

    Returns
    -------
    dict
        ``{"name", "objective", "parameters", "steps", "train_loss", "seconds", "resumed_from"}``.
    """
    import datasets
    import torch

    torch.set_num_threads(max(1, threads))
    tok = load_tokenizer(tokenizer_dir)
    chunks = datasets.load_from_disk(str(chunks_dir))
    train, val = chunks["train"], chunks["validation"]
    if max_eval_blocks is not None:
        val = val.select(range(min(len(val), max_eval_blocks)))
    block_size = len(train[0]["input_ids"])
    config = model_config(objective, tok, block_size=block_size, overrides=model, source=f"textlm.models.{name}")
    check_ids_fit(train, config.vocab_size, chunks_dir)
    check_ids_fit(val, config.vocab_size, chunks_dir)
    training = dict(training)
    seed = training.setdefault("seed", 0)
    lm = build_model(objective, config, seed=seed)
    n_params = sum(p.numel() for p in lm.parameters())
    work_dir = Path(work_dir)
    trainer = make_trainer(lm, tok, train, val, objective=objective, work_dir=work_dir, training=training,
                           mlm_probability=mlm_probability, seed=seed)
    run_config = jsonable({"objective": objective, "model": model, "vocab_size": config.vocab_size,
                           "block_size": block_size, "mlm_probability": mlm_probability,
                           "max_eval_blocks": max_eval_blocks, "data": train._fingerprint,
                           "training": {k: v for k, v in training.items() if k not in CONTINUATION_KEYS}})
    with trainer.args.main_process_first(desc="checking the run config and the checkpoints to resume"):
        # rank 0 first: it sets aside another config's run, removes a half-written checkpoint and quarantines an
        # unreadable one; the other ranks then only read what is left
        zero = trainer.is_world_process_zero()
        if zero:
            keep_only_same_config(work_dir, run_config)
        last = last_complete_checkpoint(work_dir, fix=zero)
    log.info("%s: %s, %.2fM parameters, %d train / %d eval blocks of %d, %s%s", name, type(lm).__name__,
             n_params / 1e6, len(train), len(val), block_size, "cuda bf16" if trainer.args.bf16 else "cpu",
             f", resuming from {last}" if last else "")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    summary = {"name": name, "objective": objective, "parameters": n_params, "steps": trainer.state.global_step,
               "train_loss": float(result.training_loss), "seconds": seconds, "resumed_from": last}
    if trainer.is_world_process_zero():  # under torchrun rank 0 writes the outputs
        save_outputs(trainer, tok, Path(out_dir), summary)
        log.info("%s: %d steps, train loss %.3f, %.0f s", name, summary["steps"], summary["train_loss"], seconds)
    return summary


def make_trainer(lm, tok, train, val, *, objective: str, work_dir: Path, training: dict, mlm_probability: float,
                 seed: int):
    """The ``Trainer`` of :func:`train_lm`: step-based eval/save into ``work_dir``, TensorBoard, bf16 on CUDA."""
    import torch
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    cuda = torch.cuda.is_available()
    # one TensorBoard folder for the whole run, also across resumes (Trainer's default is runs/<date>)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(work_dir / "tensorboard")
    args = TrainingArguments(
        output_dir=str(work_dir), report_to=["tensorboard"], eval_strategy="steps", save_strategy="steps",
        bf16=cuda and torch.cuda.is_bf16_supported(), use_cpu=not cuda, dataloader_num_workers=0,
        disable_tqdm=False, **training)
    collator = DataCollatorForLanguageModeling(tok, mlm=objective == "mlm", mlm_probability=mlm_probability,
                                               seed=seed)
    return Trainer(model=lm, args=args, train_dataset=train, eval_dataset=val, data_collator=collator)


def save_outputs(trainer, tok, out_dir: Path, summary: dict) -> None:
    """Write ``out_dir/model/`` (weights, config, tokenizer; atomic), ``history.tsv`` and ``train_summary.json``."""
    with atomic_dir(out_dir / "model") as stage:
        trainer.save_model(str(stage))
        tok.save_pretrained(str(stage))
    write_history(trainer.state.log_history, out_dir / "history.tsv")
    with atomic_open(out_dir / "train_summary.json") as fh:
        json.dump(summary, fh, indent=1)


def write_history(log_history: list[dict], path: str | os.PathLike) -> None:
    """Write Trainer's ``log_history`` as a TSV: one row per logged step, columns step, loss, eval_loss, ..."""
    import pandas as pd

    rows = [{k: v for k, v in entry.items() if isinstance(v, (int, float))} for entry in log_history]
    table = pd.DataFrame(rows)
    if "step" in table:
        table = table.sort_values("step", kind="stable")
    with atomic_open(path) as fh:
        table.to_csv(fh, sep="\t", index=False)
