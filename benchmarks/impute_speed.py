"""Imputation speed: the trained ragbert model vs Beagle 5.4 on the same targets, in one run.

Both impute the test samples of a finished default run (``results/impute/`` of
``snakemake --cores 2``: panel.h5, split.tsv, windows.tsv, inputs/panel.vcf.gz,
inputs/targets.vcf.gz and ``<variant>/model/best``). Prints, for each method, the best
wall-clock seconds over ``--repeats`` runs and genotypes/s (test samples x panel sites
/ seconds), and the ratio ours / Beagle (above 1 = ours is faster). Ours runs on this
machine's CPU; with ``--gpu`` (and CUDA present) the GPU figure is added. When the run had a
genetic map (``inputs/genetic_map.plink.map``), both methods get it. Times include
reading inputs and writing the bgzipped VCF for both. The machine may be shared with
other jobs: compare numbers from one run only.

Example::

    python benchmarks/impute_speed.py --results results/impute --threads 2
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from omicslm.impute.baselines import run_beagle
from omicslm.impute.layout import read_panel
from omicslm.impute.ragbert.predict import impute_ragbert
from omicslm.impute.split import read_split


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results/impute", help="results/impute of a finished run")
    ap.add_argument("--variant", default="ragbert", help="model variant whose best checkpoint imputes")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both methods")
    ap.add_argument("--batch-size", type=int, default=256, help="haplotype rows per forward pass (ours)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per method; the best time is kept")
    ap.add_argument("--beagle-mem-gb", type=int, default=2, help="Java heap for Beagle")
    ap.add_argument("--gpu", action="store_true", help="also time ours on CUDA when available")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    r = Path(args.results)
    panel = read_panel(r / "panel.h5", haplotypes=False)
    n_test = int((read_split(r / "split.tsv").role == "test").sum())
    genotypes = n_test * panel.n_variants
    gmap = r / "inputs" / "genetic_map.plink.map"
    gmap = gmap if gmap.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def ours(device):
            return lambda: impute_ragbert(r / "panel.h5", r / "split.tsv", r / "inputs" / "targets.vcf.gz",
                                          r / "windows.tsv", r / args.variant / "model" / "best",
                                          tmp / f"ours_{device}.vcf.gz", tmp / f"ours_{device}.json",
                                          method=args.variant, batch_size=args.batch_size, threads=args.threads,
                                          device=device, genetic_map=gmap)

        def beagle():
            run_beagle(r / "inputs" / "panel.vcf.gz", r / "inputs" / "targets.vcf.gz", tmp / "beagle.vcf.gz",
                       genetic_map=gmap, threads=args.threads, mem_gb=args.beagle_mem_gb, seed=1,
                       log=tmp / "beagle.log")

        rows = [(f"{args.variant} (cpu, {args.threads} threads)", _best(ours("cpu"), args.repeats)),
                (f"beagle 5.4 ({args.threads} threads)", _best(beagle, args.repeats))]
        if args.gpu and torch.cuda.is_available():
            ours("cuda")()  # warm-up: CUDA context and kernels
            rows.insert(1, (f"{args.variant} (cuda)", _best(ours("cuda"), args.repeats)))
    print(f"{n_test} test samples x {panel.n_variants} sites = {genotypes} genotypes")
    for name, sec in rows:
        print(f"{name:32s} {sec:8.2f} s  {genotypes / sec:12.0f} genotypes/s")
    beagle_sec = rows[-1][1]
    for name, sec in rows[:-1]:
        print(f"ratio {name} / beagle (genotypes/s): {beagle_sec / sec:.2f}")


if __name__ == "__main__":
    main()
