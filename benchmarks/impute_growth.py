"""How imputation cost grows: ours and Beagle 5.4 at 1x, 2x, 4x the sites and 1x, 4x the targets, in one run.

The workflow's simulation (config.yaml's ``impute.simulate``, or ``--config PRESET`` merged over it) is made at
``--lengths`` times its segment length, each in its own working directory under ``--workdir``: one panel, split,
array and trained model per length (``benchmarks/impute_speed.py``'s ``prepare``). The held-out targets are
imputed twice per length: a quarter of them (1x targets) and all of them (4x), by each ``--variants`` model and by
Beagle, every imputation in its own measured child process with the same threads. Printed per (length, targets,
method): sites, targets, wall seconds, and microseconds per target-site (wall / (targets x sites)). Linear growth
shows as a flat microseconds-per-target-site column; fixed costs (process start, reading the panel) make it fall
as the run grows. The last lines give each method's growth exponent over sites and over targets (log wall ratio /
log size ratio; 1.0 is linear).

The machine may be shared with other jobs: compare numbers from one run only.

Examples::

    python benchmarks/impute_growth.py --workdir /tmp/growth --threads 2
    python benchmarks/impute_growth.py --config config/scale.yaml --lengths 0.1 0.2 0.4 --workdir /data/growth
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impute_speed  # noqa: E402  (the sibling benchmark: prepare, measured, the phase programs)

ROOT = impute_speed.ROOT


def preset(base: Path | None, factor: float, out: Path) -> Path:
    """A preset over config.yaml (+ ``base``): the simulated segment ``factor`` times as long."""
    import yaml

    from omicslm.config import load_config

    configs = [ROOT / "config.yaml"] + ([base] if base else [])
    length = int(round(load_config(*configs)["impute"]["simulate"]["length"] * factor))
    merged = yaml.safe_load(base.read_text()) if base else {}
    merged.setdefault("impute", {}).setdefault("simulate", {})["length"] = length
    out.write_text(yaml.safe_dump(merged, sort_keys=False))
    return out


def subset_targets(vcf: Path, n: int, out: Path) -> Path:
    """The first ``n`` samples of ``vcf`` (bcftools), bgzipped and indexed."""
    samples = subprocess.run(["bcftools", "query", "-l", str(vcf)], check=True, capture_output=True,
                             text=True).stdout.split()
    subprocess.run(["bcftools", "view", "-Oz", "-o", str(out), "-s", ",".join(samples[:n]), str(vcf)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", str(out)], check=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--config", type=Path, help="preset merged over config.yaml (its impute.simulate is scaled)")
    ap.add_argument("--workdir", type=Path, default=Path("bench/growth"), help="one working directory per length below")
    ap.add_argument("--lengths", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                    help="segment length factors (sites grow with them)")
    ap.add_argument("--variants", nargs="+", default=["ragbert", "ragbert_copying_only"], help="our model variants")
    ap.add_argument("--threads", type=int, default=2, help="threads for every method (and snakemake's cores)")
    ap.add_argument("--batch-size", type=int, default=256, help="haplotype rows per forward pass (ours)")
    ap.add_argument("--beagle-mem-gb", type=int, default=2, help="Java heap for Beagle")
    args = ap.parse_args()
    base = args.config.resolve() if args.config else None

    from omicslm.config import load_config
    from omicslm.impute.layout import read_panel

    rows = []  # (factor, n_sites, n_targets, method, seconds)
    for factor in args.lengths:
        work = (args.workdir / f"x{factor:g}").resolve()
        work.mkdir(parents=True, exist_ok=True)
        cfg = preset(base, factor, work / "preset.yaml")
        skip = float(load_config(impute_speed.ROOT / "config.yaml", cfg)["impute"]["model"]["predict_skip_confident"])
        for variant in args.variants:
            r = impute_speed.prepare(cfg, work, variant, args.threads)
        n_sites = read_panel(r / "panel.h5", haplotypes=False).n_variants
        targets = r / "inputs" / "targets.phased.vcf.gz"
        targets = targets if targets.is_file() else r / "inputs" / "targets.vcf.gz"
        gmap = r / "inputs" / "genetic_map.plink.map"
        gmap = str(gmap) if gmap.is_file() else None
        n_all = len(subprocess.run(["bcftools", "query", "-l", str(targets)], check=True, capture_output=True,
                                   text=True).stdout.split())
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for n in (max(1, n_all // 4), n_all):
                sub = subset_targets(targets, n, tmp / f"targets_{n}.vcf.gz")
                for variant in args.variants:
                    sec, _ = impute_speed.measured(
                        impute_speed.OURS, h5=r / "panel.h5", split=r / "split.tsv", targets=sub,
                        windows=r / "windows.tsv", best=r / variant / "model" / "best", out=tmp / f"{variant}.vcf.gz",
                        runtime=tmp / f"{variant}.json", variant=variant, batch_size=args.batch_size, device="cpu",
                        cpu_bf16=False, skip_confident=skip, threads=args.threads, gmap=gmap)
                    rows.append((factor, n_sites, n, variant, sec))
                sec, _ = impute_speed.measured(impute_speed.BEAGLE, ref=r / "inputs" / "panel.vcf.gz", targets=sub,
                                               out=tmp / "beagle.vcf.gz", mem_gb=args.beagle_mem_gb,
                                               log=tmp / "beagle.log", threads=args.threads, gmap=gmap)
                rows.append((factor, n_sites, n, "beagle 5.4", sec))
                print(f"length x{factor:g}: {n} targets done", flush=True)

    print(f"\n{'length':>7s} {'sites':>7s} {'targets':>8s} {'method':22s} {'wall s':>8s} {'us/target-site':>15s}")
    for factor, n_sites, n, method, sec in rows:
        print(f"{'x' + format(factor, 'g'):>7s} {n_sites:7d} {n:8d} {method:22s} {sec:8.2f} {1e6 * sec / (n * n_sites):15.2f}")
    lo, hi = min(args.lengths), max(args.lengths)
    for method in dict.fromkeys(m for *_, m, _ in rows):
        def wall(f, big):
            cand = [(n, s, sec) for ff, s, n, m, sec in rows if m == method and ff == f]
            return (max if big else min)(cand)
        growth = []
        if hi > lo:
            (n1, s1, w1), (n2, s2, w2) = wall(lo, True), wall(hi, True)
            growth.append(f"over sites {math.log(w2 / w1) / math.log(s2 / s1):.2f}")
        (n1, _, w1), (n2, _, w2) = wall(hi, False), wall(hi, True)
        if n2 > n1:
            growth.append(f"over targets {math.log(w2 / w1) / math.log(n2 / n1):.2f}")
        print(f"growth exponent of {method}: " + ", ".join(growth))


if __name__ == "__main__":
    main()
