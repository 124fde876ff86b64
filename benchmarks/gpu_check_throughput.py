"""Steps b and c of benchmarks/gpu_check.py: the imputation speed of ours against Beagle 5.4, and the text LM's
training throughput (GPT-2 124M through the workflow's Trainer) beside llm.c's figure."""

from __future__ import annotations
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from gpu_check_support import (LLMC_H100_TOKENS_PER_S, ROOT, GpuSampler, Rows, Size, clean, cuda_available,
                               record_sampler)

# ---------------------------------------------------------------------------------------------------------------
# step b: imputation speed


def parse_impute_speed(stdout: str) -> tuple[dict[str, tuple], dict[str, float], str | None]:
    """impute_speed.py's table: ({"method phase": (wall s, genotypes/s, r2 all)}, {its "ratio" lines}, genotypes line).

    genotypes/s and r2 are None for the phases that impute nothing.
    Its table has fixed-width columns ``method`` (14), ``phase`` (26), wall s, peak MiB, genotypes/s (blank for
    phases that impute nothing), r2 per bin; the older format printed ``name  S s  G genotypes/s`` lines.
    """
    timings, ratios, genotypes, in_table = {}, {}, None, False
    for line in stdout.splitlines():
        if line.startswith("method "):
            in_table = True
        elif not line.strip() or line.startswith(("ours", "ratio")):
            in_table = False
        if m := re.match(r"^ratio (.+?): ([\d.]+)$", line.strip()):
            ratios[m.group(1)] = float(m.group(2))
        elif " genotypes" in line and " x " in line and "=" in line:
            genotypes = line.strip()
        elif m := re.match(r"^(.*?)\s+([\d.]+) s\s+(\d+) genotypes/s$", line.strip()):  # the older format
            timings[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)), None)
        elif in_table and len(line) > 42 and not line.startswith("method "):
            cells = line[41:].split()
            try:
                wall = float(cells[0])
            except (IndexError, ValueError):
                continue
            rate = float(cells[2]) if len(cells) > 2 and re.fullmatch(r"\d+", cells[2]) else None
            r2 = float(cells[-1]) if rate is not None and len(cells) > 3 else None  # the last column: r2 all
            timings[f"{line[:14].strip()} {line[15:41].strip()}"] = (wall, rate, r2)
    return timings, ratios, genotypes


def step_impute_speed(rows: Rows, out: Path, size: Size, args) -> None:
    cuda = cuda_available()
    if args.impute_results:
        results, what = Path(args.impute_results), f"the finished run in {args.impute_results}"
    else:
        results = out / "work" / ("cuda" if cuda else "cpu") / "results" / "impute"
        what = ("step a's tiny default run (config/1kg_chr20.yaml's run is too slow to make on the device; "
                "pass --impute-results to time a finished one)")
    need = [results / p for p in ("panel.h5", "split.tsv", "windows.tsv", "array_sites.tsv", "inputs/panel.vcf.gz",
                                  "inputs/targets.vcf.gz", "ragbert/model/best", "ragbert/model/train_runtime.json")]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        rows.status("failed", f"the imputation run's outputs are missing: {', '.join(missing)}")
        return
    threads = max(1, min(args.cores, 8))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "impute_speed.py"), "--results", str(results),
           "--threads", str(threads)] + (["--gpu"] if cuda else [])
    rows.add("input", str(results), "", what)
    sampler = GpuSampler() if cuda else None
    if sampler is not None:
        sampler.start()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=max(10, args.time_limit - 10),
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
    except subprocess.TimeoutExpired:
        rows.status("failed", "impute_speed.py ran past the step's time limit")
        return
    finally:
        if sampler is not None:
            sampler.stop()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    (out / "logs" / "impute_speed.log").write_text("$ " + " ".join(cmd) + "\n" + res.stdout + res.stderr)
    if res.returncode != 0:
        rows.status("failed", f"impute_speed.py exit {res.returncode}: {clean(res.stderr[-400:])}")
        return
    timings, ratios, genotypes = parse_impute_speed(res.stdout)
    if genotypes:
        rows.add("genotypes", genotypes.split("=")[-1].split()[0].rstrip(";"), "", genotypes)
    for name, (wall, rate, r2) in timings.items():
        rows.add(f"wall.{name}", wall, "s", "impute_speed.py, each phase in its own process")
        if rate is not None:
            rows.add(f"genotypes_per_s.{name}", rate, "genotypes/s", "test samples x panel sites / wall s")
        if r2 is not None:
            rows.add(f"r2_all.{name}", r2, "", "the workflow's evaluation of that VCF, every untyped site")
    beagle = next((rate for name, (_, rate, _) in timings.items() if name.startswith("beagle") and rate), None)
    ours = {name: rate for name, (_, rate, _) in timings.items()
            if rate and not name.startswith(("beagle", "minimac4"))}
    for name, rate in ours.items():
        if beagle:
            rows.add(f"ratio_vs_beagle.{name}", rate / beagle, "x", "ours / Beagle 5.4 genotypes/s (> 1: ours faster)")
    for label, value in ratios.items():
        rows.add(f"impute_speed.ratio {label}", value, "x", "as impute_speed.py prints it")
    if cuda:
        record_sampler(rows, sampler, "impute_speed.py (ours on CUDA)")
    else:
        rows.add("peak_gpu_mem_allocated", "n/a", "MiB", "no CUDA")
    if not beagle or not ours:
        rows.status("failed", f"no ours-vs-Beagle figure in impute_speed.py's output: {clean(res.stdout[-300:])}")
    elif cuda and not any("cuda" in name for name in ours):
        rows.status("failed", "impute_speed.py --gpu printed no CUDA figure")
    elif not cuda and not args.smoke:
        rows.status("failed", "GPU mode but no CUDA: ours on CPU vs Beagle only")
    else:
        rows.status("ok", "" if cuda else "no CUDA: ours on CPU vs Beagle only")


# ---------------------------------------------------------------------------------------------------------------
# step c: text LM throughput


def tiny_tokenizer(folder: Path):
    """A 300-id byte-level BPE (the model's vocabulary is set apart from it; the ids are synthetic)."""
    from tokenizers import ByteLevelBPETokenizer

    from omicslm.textlm.tokenizer import load_bpe

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    text = ["Hello world. To be, or not to be, that is the question."] * 20
    bpe.train_from_iterator(text, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(folder))
    tok = load_bpe(folder)
    tok.pad_token = tok.eos_token
    return tok


def step_textlm_throughput(rows: Rows, out: Path, size: Size, args) -> None:
    import numpy as np
    import torch
    import yaml
    from datasets import Dataset
    from transformers import TrainerCallback

    from omicslm.textlm.train import build_model, make_trainer, model_config

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        rows.status("failed", "no CUDA: the GPU throughput cannot be measured here (use --cpu-smoke on CPU)")
        return
    torch.set_num_threads(max(1, args.cores))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    work = out / "work" / "textlm_throughput"
    tok = tiny_tokenizer(work / "bpe")
    cfg = model_config("clm", tok, block_size=size.lm_block, overrides={
        "n_embd": size.lm_width, "n_layer": size.lm_layers, "n_head": size.lm_heads, "vocab_size": size.lm_vocab})
    lm = build_model("clm", cfg, seed=0)
    n_params = sum(p.numel() for p in lm.parameters())
    steps = size.lm_warmup + size.lm_steps
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, size.lm_vocab, size=(steps * size.lm_batch, size.lm_block), dtype=np.int64)
    train = Dataset.from_dict({"input_ids": blocks.tolist()})
    val = Dataset.from_dict({"input_ids": blocks[:2].tolist()})
    # config/full.yaml's TrainingArguments (the workflow's GPU recipe), one micro-batch per optimizer step
    # (its 16-fold accumulation would make a step 512 blocks: minutes for 30 steps) and no eval/log/save
    training = yaml.safe_load((ROOT / "config" / "full.yaml").read_text())["textlm"]["train"]
    training.update(per_device_train_batch_size=size.lm_batch, gradient_accumulation_steps=1, max_steps=steps,
                    eval_steps=10**6, logging_steps=10**6, save_steps=10**6, save_total_limit=1, warmup_steps=0.05)
    trainer = make_trainer(lm, tok, train, val, objective="clm", work_dir=work / "trainer", training=training,
                           mlm_probability=0.15, seed=0)

    class Clock(TrainerCallback):
        t0 = t1 = None

        def on_step_end(self, args_, state, control, **kw):
            if state.global_step in (size.lm_warmup, steps):
                if cuda:
                    torch.cuda.synchronize()
                if state.global_step == size.lm_warmup:
                    Clock.t0 = time.perf_counter()
                else:
                    Clock.t1 = time.perf_counter()
            control.should_save = control.should_evaluate = False  # no checkpoint of the timing run

    trainer.add_callback(Clock())
    rows.add("model", f"{n_params / 1e6:.1f}M", "parameters",
             f"GPT2LMHeadModel {size.lm_layers} layers x {size.lm_width}, {size.lm_heads} heads, block "
             f"{size.lm_block}, vocab {size.lm_vocab}; {'bf16 autocast' if trainer.args.bf16 else 'fp32'} on "
             f"{'cuda' if cuda else 'cpu'}; omicslm.textlm.train.make_trainer (HF Trainer)")
    result = trainer.train()
    if Clock.t0 is None or Clock.t1 is None:
        rows.status("failed", f"the Trainer stopped at step {trainer.state.global_step} of {steps}")
        return
    seconds = Clock.t1 - Clock.t0
    tokens = size.lm_steps * size.lm_batch * size.lm_block
    tps = tokens / seconds
    rows.add("tokens_per_step", size.lm_batch * size.lm_block, "tokens", f"{size.lm_batch} blocks x {size.lm_block}")
    rows.add("timed_steps", size.lm_steps, "steps", f"after {size.lm_warmup} warm-up steps")
    rows.add("seconds", seconds, "s")
    rows.add("tokens_per_s", tps, "tokens/s", "training: forward, backward, AdamW step")
    rows.add("train_loss", float(result.training_loss), "", f"random ids: about ln({size.lm_vocab}) = "
                                                            f"{math.log(size.lm_vocab):.2f}")
    if cuda:
        rows.add("llmc_reference_tokens_per_s", LLMC_H100_TOKENS_PER_S, "tokens/s",
                 "llm.c GPT-2 124M on one H100 (bf16, fused kernels, torch.compile-free C/CUDA)")
        rows.add("ratio_vs_llmc", tps / LLMC_H100_TOKENS_PER_S, "x", "ours / llm.c (an H200 is ~1.0-1.2x an H100)")
        rows.add("peak_gpu_mem_allocated", round(torch.cuda.max_memory_allocated() / 2**20), "MiB",
                 "torch.cuda.max_memory_allocated, reset at the step's start")
        rows.add("gpu", torch.cuda.get_device_name(0), "", "")
    else:
        rows.add("peak_gpu_mem_allocated", "n/a", "MiB", "no CUDA")
    ok = math.isfinite(tps) and tps > 0 and math.isfinite(float(result.training_loss))
    rows.status("ok" if ok else "failed", ("toy size on CPU (--cpu-smoke): not a throughput figure" if not cuda
                                           else "") if ok else f"tokens/s {tps}, loss {result.training_loss}")
