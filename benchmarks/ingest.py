"""Time omicslm's VCF ingest against bcftools doing the same filter-and-decode.

Ours: ``vcf_to_hdf5(..., min_maf=0.01)`` (biallelic SNPs, MAF filter, phased
genotypes decoded and written to HDF5). bcftools: the same site filter and a full
genotype decode to text::

    bcftools view -q 0.01:minor -m2 -M2 -v snps FILE | bcftools query -f '[%GT\\t]\\n' > /dev/null

Each is run ``--repeats`` times in this one process; the best wall-clock times and
the ratio ours / bcftools are printed (below 1 = ours is faster), and also the best
CPU times (user + system, all threads / both piped processes), which stay meaningful
on a machine shared with other jobs. Input is a VCF (default: the
shared 1000 Genomes chr20 EUR panel when ../shared/data exists) or a panel simulated
with msprime (``--simulate SITES SAMPLES``).

Examples::

    python benchmarks/ingest.py
    python benchmarks/ingest.py --simulate 100000 2000
"""

from __future__ import annotations

import argparse
import logging
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from omicslm.impute.ingest import vcf_to_hdf5

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "impute"
DEFAULT_VCF = SHARED / "1kg_phase3_chr20_eur" / "reference.vcf.gz"
DEFAULT_PANEL = SHARED / "integrated_call_samples_v3.20130502.ALL.panel"

# msprime parameters of the simulated panel: human-like effective size, mutation and
# recombination rates, so site frequencies look like a real panel's.
NE = 10_000
MU = 1.25e-8
RHO = 1e-8


def simulate(sites: int, samples: int, workdir: Path, seed: int) -> tuple[Path, Path]:
    """Simulate about ``sites`` segregating sites in ``samples`` diploids; write VCF + panel.

    The sequence length is chosen from Watterson's estimate E[S] = 4 Ne mu L a_n,
    a_n = sum_{i < 2n} 1/i, so the site count lands near ``sites``.
    """
    import msprime
    import pysam

    a_n = np.sum(1.0 / np.arange(1, 2 * samples))
    length = int(sites / (4 * NE * MU * a_n))
    t = time.perf_counter()
    ts = msprime.sim_ancestry(
        samples=samples, sequence_length=length, recombination_rate=RHO, population_size=NE, random_seed=seed
    )
    ts = msprime.sim_mutations(ts, rate=MU, random_seed=seed)
    names = [f"S{i:05d}" for i in range(samples)]
    plain = workdir / "sim.vcf"
    with open(plain, "w") as fh:
        # VCF positions are 1-based; msprime's discrete genome starts at 0
        ts.write_vcf(fh, contig_id="1", individual_names=names, position_transform=lambda p: np.asarray(p, int) + 1)
    vcf = workdir / "sim.vcf.gz"
    pysam.tabix_compress(str(plain), str(vcf), force=True)
    plain.unlink()
    panel = workdir / "sim.panel"
    panel.write_text("sample\tpop\tsuper_pop\tgender\n" + "".join(f"{s}\tSIM\tSIM\tunknown\n" for s in names))
    print(f"simulated {ts.num_sites} sites x {samples} samples ({length / 1e6:.1f} Mb) in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    return vcf, panel


def time_ours(vcf: Path, panel: Path, out: Path, min_maf: float) -> tuple[float, float, dict]:
    """Wall and CPU seconds of one vcf_to_hdf5 run, and its stats."""
    t, c = time.perf_counter(), time.process_time()
    stats = vcf_to_hdf5(vcf, panel, out, min_maf=min_maf, panel_subset=True)
    return time.perf_counter() - t, time.process_time() - c, stats


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_bcftools(vcf: Path, min_maf: float) -> tuple[float, float]:
    """Wall and CPU seconds (both processes of the pipe) of one bcftools run."""
    cmd = (
        f"bcftools view -q {min_maf}:minor -m2 -M2 -v snps {shlex.quote(str(vcf))}"
        " | bcftools query -f '[%GT\\t]\\n' > /dev/null"
    )
    t, c = time.perf_counter(), _children_cpu()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return time.perf_counter() - t, _children_cpu() - c


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vcf", nargs="?", type=Path, default=None, help=f"phased VCF (default: {DEFAULT_VCF})")
    p.add_argument("--panel", type=Path, default=None, help=f"population panel file (default: {DEFAULT_PANEL})")
    p.add_argument("--simulate", nargs=2, type=int, metavar=("SITES", "SAMPLES"),
                   help="benchmark on an msprime panel of about SITES sites x SAMPLES diploid samples")
    p.add_argument("--seed", type=int, default=1, help="msprime seed for --simulate (default 1)")
    p.add_argument("--min-maf", type=float, default=0.01, help="MAF filter for both tools (default 0.01)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each tool; the best is reported (default 3)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="omicslm_bench_") as tmp:
        tmp = Path(tmp)
        if args.simulate:
            vcf, panel = simulate(*args.simulate, tmp, args.seed)
        else:
            vcf, panel = args.vcf or DEFAULT_VCF, args.panel or DEFAULT_PANEL
            if not vcf.exists() or not panel.exists():
                p.error(f"{vcf} or {panel} not found: pass a VCF and --panel, or use --simulate")
        ours, theirs, stats = [], [], None
        for _ in range(args.repeats):  # interleaved, so a burst of load hits both
            *times, stats = time_ours(vcf, panel, tmp / "panel.h5", args.min_maf)
            ours.append(times)
            theirs.append(time_bcftools(vcf, args.min_maf))
        ours, theirs = np.array(ours), np.array(theirs)  # (repeats, [wall, cpu])
        print(f"input    {vcf} ({stats['n_records']} records x {stats['n_samples']} samples, "
              f"{stats['n_kept']} kept at MAF >= {args.min_maf})")
        for name, t in (("omicslm  vcf_to_hdf5  ", ours), ("bcftools view | query ", theirs)):
            print(f"{name} best wall {t[:, 0].min():7.3f} s  cpu {t[:, 1].min():7.3f} s  "
                  f"(wall runs: {', '.join(f'{x:.3f}' for x in t[:, 0])})")
        print(f"ratio ours/bcftools    wall {ours[:, 0].min() / theirs[:, 0].min():.2f}  "
              f"cpu {ours[:, 1].min() / theirs[:, 1].min():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
