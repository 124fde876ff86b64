"""Imputation speed and memory: our model, Beagle 5.4 and minimac4 on the same targets, in one run.

All three impute the held-out test samples of one finished run of the workflow (``results/impute/``:
panel.h5, split.tsv, windows.tsv, array_sites.tsv, inputs/panel.vcf.gz, the phased targets
inputs/targets[.phased].vcf.gz and ``<variant>/model/best``). With ``--config PRESET`` the script makes that
run itself first (``snakemake --configfile config.yaml PRESET`` in ``--workdir``, only the steps those files
need); without it, ``--results`` names one.

Every phase runs in its own child process, measured from outside: wall seconds (the method's own timer:
Beagle's and minimac4's tool call, JVM start included; our ``impute_ragbert``, after the interpreter has started
and imported its libraries: numba, faiss, and torch and transformers for a variant with a network) and peak
resident memory of the process and what it started (``wait4``'s ``ru_maxrss``). Our imputation's whole process
(Python start and those imports included: about 1 s here for the copying model alone, 3 s with the network) is a
row of its own, with its ratio to Beagle's wall. Phases: ours data preparation + training (the run's
train_runtime.json, or measured again with ``--train``), ours imputation (CPU; with ``--gpu`` and CUDA also on
CUDA), Beagle imputation, minimac4 reference compression and imputation. Each method's VCF is scored with the workflow's
evaluation (r2 per panel-MAF bin, the same untyped sites), and ours' r2 minus each peer's is printed with a paired
site-bootstrap 95% interval (the same resampled sites score both methods). The last line is
``ratio ours/beagle impute wall: X.XX`` (below 1: ours is faster).

The machine may be shared with other jobs: compare numbers from one run only.

Examples::

    python benchmarks/impute_speed.py --results results/impute --threads 2
    python benchmarks/impute_speed.py --config config/1kg_chr20.yaml --workdir bench/1kg --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINS = [0.0, 0.005, 0.01, 0.05, 0.5]


def measured(code: str, *, process_wall: list | None = None, **kwargs) -> tuple[float, float]:
    """Run ``code`` (Python, given ``kwargs`` as the JSON object ``args``; it prints its own seconds as its last
    stdout line) in a child process: (those seconds, peak RSS of the child and its descendants in MiB). The child's
    whole wall time, interpreter start included, is appended to ``process_wall`` when given."""
    prog = f"import json, sys\nargs = json.loads(sys.argv[1])\n{code}"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", prog, json.dumps(kwargs, default=str)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if process_wall is not None:
        process_wall.append(time.perf_counter() - started)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"phase failed (exit {proc.returncode}); its stdout ends: {out[-2000:]}")
    return float(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024  # Linux: KiB


OURS = """
if args["network"]:  # the network's libraries, imported on demand: loaded before the clock, as the other imports are
    import torch
    from transformers import BertConfig, BertModel
from omicslm.impute.ragbert.predict import impute_ragbert
print(impute_ragbert(args["h5"], args["split"], args["targets"], args["windows"], args["best"], args["out"],
                     args["runtime"], method=args["variant"], batch_size=args["batch_size"], threads=args["threads"],
                     device=args["device"], genetic_map=args["gmap"], cpu_bf16=args["cpu_bf16"],
                     skip_confident=args["skip_confident"]))
"""
TRAIN = """
import json, time
from omicslm.config import load_config
from omicslm.impute.ragbert.train import train_ragbert
cfg = load_config(*args["configs"])["impute"]["model"]
t = time.perf_counter()
train_ragbert(args["h5"], args["split"], args["array"], args["windows"], out_dir=args["out"], work_dir=args["work"],
              variant=args["variant"], model_block=cfg, maf_bins=args["bins"], threads=args["threads"],
              genetic_map=args["gmap"])
print(time.perf_counter() - t)
"""
BEAGLE = """
from omicslm.impute.baselines import run_beagle
print(run_beagle(args["ref"], args["targets"], args["out"], genetic_map=args["gmap"], threads=args["threads"],
                 mem_gb=args["mem_gb"], seed=1, log=args["log"]))
"""
M4_COMPRESS = """
from omicslm.impute.baselines import compress_reference_minimac4
print(compress_reference_minimac4(args["ref"], args["out"], threads=args["threads"]))
"""
M4 = """
from omicslm.impute.baselines import run_minimac4
print(run_minimac4(args["msav"], args["targets"], args["out"], threads=args["threads"], genetic_map=args["gmap"]))
"""


def _has_network(checkpoint: Path) -> bool:
    """Whether a ragbert checkpoint has a network (the copying model alone has none)."""
    return bool(json.loads((Path(checkpoint) / "config.json").read_text())["options"].get("network", True))


def prepare(config: Path, workdir: Path, variant: str, cores: int) -> Path:
    """Run the workflow for the held-out inputs and the model of ``config`` in ``workdir``; its results/impute."""
    r = "results/impute"
    targets = [f"{r}/{f}" for f in ("panel.h5", "split.tsv", "windows.tsv", "array_sites.tsv", "inputs/panel.vcf.gz")]
    targets += [f"{r}/{variant}/model/best", f"{r}/{variant}/model/train_runtime.json"]
    phased = yaml_targets_phased(config)
    targets.append(f"{r}/inputs/targets.vcf.gz" if phased else f"{r}/inputs/targets.phased.vcf.gz")
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(ROOT / "config.yaml"), str(config.resolve()), "--cores", str(cores),
           "--", *targets]
    print("preparing:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return workdir / r


def yaml_targets_phased(config: Path) -> bool:
    """impute.split.targets_phased of config.yaml merged with ``config``."""
    from omicslm.config import load_config

    return bool(load_config(ROOT / "config.yaml", config)["impute"]["split"]["targets_phased"])


def score(r: Path, vcf: Path, method: str, seconds: float, tmp: Path) -> dict[str, float]:
    from omicslm.impute.evaluate import evaluate_method
    from omicslm.io.runtime import write_runtime

    runtime = write_runtime(tmp / f"{method}.runtime.json", method=method, seconds=seconds, threads=1)
    table = evaluate_method(r / "panel.h5", r / "split.tsv", r / "array_sites.tsv", vcf, runtime,
                            tmp / f"{method}.eval.tsv", method=method, bins=BINS, n_boot=0, seed=0)
    return dict(zip(table["bin"], table["r2"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", type=Path, help="preset merged over config.yaml: make its run in --workdir first")
    ap.add_argument("--workdir", type=Path, help="working directory of --config's run (default bench/<preset stem>)")
    ap.add_argument("--results", type=Path, default=Path("results/impute"), help="results/impute of a finished run")
    ap.add_argument("--variant", default="ragbert", help="model variant whose best checkpoint imputes")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for every method (and snakemake's cores)")
    ap.add_argument("--batch-size", type=int, default=256, help="haplotype rows per forward pass (ours)")
    ap.add_argument("--beagle-mem-gb", type=int, default=2, help="Java heap for Beagle")
    ap.add_argument("--train", action="store_true", help="measure ours' data preparation + training again")
    ap.add_argument("--gpu", action="store_true", help="also time ours on CUDA when available")
    ap.add_argument("--cpu-bf16", action="store_true",
                    help="also time ours with the network in bf16 on this CPU (impute.model.predict_cpu_bf16; needs "
                         "native bf16); the last line's ratio is then that row's")
    ap.add_argument("--n-boot", type=int, default=1000,
                    help="site-bootstrap replicates of the paired r2 difference between ours and each peer")
    ap.add_argument("--skip-confident", type=float, default=None,
                    help="impute.model.predict_skip_confident for ours (default: the merged config's)")
    args = ap.parse_args()

    r = args.results
    configs = [ROOT / "config.yaml"]
    if args.config:
        configs.append(args.config.resolve())
        r = prepare(args.config, args.workdir or Path("bench") / args.config.stem, args.variant, args.threads)
    if args.skip_confident is None:
        from omicslm.config import load_config

        args.skip_confident = float(load_config(*configs)["impute"]["model"]["predict_skip_confident"])
    targets = r / "inputs" / "targets.phased.vcf.gz"
    targets = targets if targets.is_file() else r / "inputs" / "targets.vcf.gz"
    gmap = r / "inputs" / "genetic_map.plink.map"
    gmap = str(gmap) if gmap.is_file() else None
    best = r / args.variant / "model" / "best"
    train_rt = json.loads((r / args.variant / "model" / "train_runtime.json").read_text())

    from omicslm.impute.layout import read_panel
    from omicslm.impute.split import read_split

    panel = read_panel(r / "panel.h5", haplotypes=False)
    n_test = int((read_split(r / "split.tsv").role == "test").sum())
    genotypes = n_test * panel.n_variants
    rows = []  # (method, phase, seconds, rss MiB or None, r2 by bin or None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = dict(threads=args.threads, gmap=gmap)
        if args.train:
            sec, rss = measured(TRAIN, configs=configs, h5=r / "panel.h5", split=r / "split.tsv",
                                array=r / "array_sites.tsv", windows=r / "windows.tsv", out=tmp / "train",
                                work=tmp / "train_work", variant=args.variant, bins=BINS, **common)
            rows.append((args.variant, "data + training", sec, rss, None))
        else:
            rows.append((args.variant, "data preparation (run's)", train_rt["data_seconds"], None, None))
            rows.append((args.variant, "training (run's)", train_rt["train_seconds"], None, None))
        runs = [("cpu", False)] + ([("cpu", True)] if args.cpu_bf16 else []) + ([("cuda", False)] if args.gpu and _cuda()
                                                                              else [])
        for dev, bf16 in runs:
            name = f"{dev} bf16" if bf16 else dev
            out = tmp / f"ours_{name.replace(' ', '_')}.vcf.gz"
            process = []
            sec, rss = measured(OURS, process_wall=process, h5=r / "panel.h5", split=r / "split.tsv", targets=targets,
                                windows=r / "windows.tsv", best=best, out=out, runtime=tmp / f"ours_{dev}.json",
                                variant=args.variant, batch_size=args.batch_size, device=dev, cpu_bf16=bf16,
                                skip_confident=args.skip_confident, network=_has_network(best), **common)
            rows.append((args.variant, f"impute ({name})", sec, rss, score(r, out, f"ours_{dev}", sec, tmp)))
            rows.append((args.variant, f"impute ({name}), process", process[0], None, None))
        ref = r / "inputs" / "panel.vcf.gz"
        sec, rss = measured(BEAGLE, ref=ref, targets=targets, out=tmp / "beagle.vcf.gz", mem_gb=args.beagle_mem_gb,
                            log=tmp / "beagle.log", **common)
        rows.append(("beagle 5.4", "impute", sec, rss, score(r, tmp / "beagle.vcf.gz", "beagle", sec, tmp)))
        sec, rss = measured(M4_COMPRESS, ref=ref, out=tmp / "panel.msav", threads=args.threads)
        rows.append(("minimac4", "compress reference", sec, rss, None))
        sec, rss = measured(M4, msav=tmp / "panel.msav", targets=targets, out=tmp / "minimac4.vcf.gz", **common)
        rows.append(("minimac4", "impute", sec, rss, score(r, tmp / "minimac4.vcf.gz", "minimac4", sec, tmp)))
        paired = {peer: paired_difference(r, tmp / "ours_cpu.vcf.gz", tmp / f"{peer}.vcf.gz", args.n_boot)
                  for peer in ("beagle", "minimac4")}

    bins = [b for b in (rows[-1][4] or {}) if b != "monomorphic"]
    print(f"\n{n_test} test samples x {panel.n_variants} sites = {genotypes} genotypes; {args.threads} threads each; "
          f"ours: predict_skip_confident {args.skip_confident:g}")
    print(f"{'method':14s} {'phase':26s} {'wall s':>9s} {'peak MiB':>9s} {'genotypes/s':>12s}  "
          + "  ".join(f"r2 {b}" for b in bins))
    for method, phase, sec, rss, r2 in rows:
        rate = f"{genotypes / sec:12.0f}" if r2 is not None else " " * 12
        mem = f"{rss:9.0f}" if rss is not None else f"{'n/a':>9s}"
        cells = "  ".join(f"{r2[b]:.4f}".rjust(len(f"r2 {b}")) for b in bins) if r2 else ""
        print(f"{method:14s} {phase:26s} {sec:9.2f} {mem} {rate}  {cells}")
    print(f"r2 of ours (CPU) minus each peer's, with the {args.n_boot}-replicate paired site-bootstrap 95% interval "
          "(the same resampled sites score both: an interval that holds 0 is no difference)")
    for peer, table in paired.items():
        cells = "  ".join(f"{b} {d:+.4f} [{lo:+.4f}, {hi:+.4f}]" for b, d, lo, hi in
                          table.loc[table["bin"].isin(bins), ["bin", "diff", "diff_lo", "diff_hi"]].itertuples(index=False))
        print(f"  ours - {peer}: {cells}")
    ours = next(s for m, p, s, _, _ in rows if m == args.variant and p == "impute (cpu)")
    beagle = next(s for m, p, s, _, _ in rows if m == "beagle 5.4")
    if args.cpu_bf16:
        print(f"ratio ours/beagle impute wall, fp32 on CPU: {ours / beagle:.2f}")
        ours = next(s for m, p, s, _, _ in rows if m == args.variant and p == "impute (cpu bf16)")
    process = next(s for m, p, s, _, _ in rows if m == args.variant and p == "impute (cpu), process")
    print(f"ratio ours/beagle process wall (ours with Python start and imports): {process / beagle:.2f}")
    prep = sum(s for m, p, s, _, _ in rows if m == args.variant and not p.startswith("impute"))
    per_target = (beagle - ours) / n_test if ours < beagle else None  # seconds ours saves per target
    print(f"ours' one-off data preparation + training: {prep:.1f} s = {prep / beagle:.1f}x Beagle's imputation wall"
          + (f"; break-even after {prep / per_target:.0f} targets" if per_target else "; no break-even (ours is slower)"))
    print(f"ratio ours/beagle impute wall: {ours / beagle:.2f}")


def paired_difference(r: Path, ours: Path, peer: Path, n_boot: int):
    """Ours' r2 minus the peer's per MAF bin, with its paired site-bootstrap interval
    (:func:`omicslm.impute.evaluate.compare_methods`)."""
    from omicslm.impute.evaluate import compare_methods

    return compare_methods(r / "panel.h5", r / "split.tsv", r / "array_sites.tsv", ours, peer, bins=BINS,
                           n_boot=n_boot, seed=0)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
