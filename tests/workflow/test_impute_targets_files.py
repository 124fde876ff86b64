"""Imputing your own samples from files: your targets, your reference panel per chromosome, our model trained on it.

The data are the simulated default panel (tiny), every tenth site turned into an insertion (the same haplotypes,
ALT = REF + T: the panel's indels, which every method imputes), cut into two "chromosomes" (chr21: the first half of
the segment; chr22: the second half, renamed) and into a reference panel of 75 samples and 15 targets, whose
array genotypes (the density rule of impute.targets.array_sites) are written unphased in one multi-contig
file beside their full genotypes as truth. The first run imputes chr21 only; adding chr22 must then run
chr22's jobs and, for the peers, nothing of chr21's; our model is one model over every chromosome of the
panel, so it retrains and imputes both (by design: its training windows come from all of them).
Tests run in file order.
"""

import json
import re
import subprocess

import cyvcf2
import numpy as np
import pandas as pd
import pytest

from tests.workflow.conftest import planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

TARGET = "impute_targets_all"
SIM = {"impute": {"simulate": {"length": 300_000, "populations": {"YRI": 30, "CEU": 30, "CHB": 30}}}}
MID = 10_150_000  # the default segment starts at 10 Mb: chr21 keeps [10.0, 10.15) Mb, chr22 gets [10.15, 10.3)
PEER_RULES = {"impute_targets_beagle", "impute_targets_minimac4", "impute_targets_minimac4_compress"}


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("targets_files")


@pytest.fixture(scope="module")
def files(workdir):
    """Reference panel per chromosome, the targets' unphased array-free genotypes in one file, the truth."""
    sim_cfg = write_config(workdir / "sim.yaml", SIM)
    snakemake(workdir, "resources/impute/simulated/panel.vcf.gz", configs=[sim_cfg], timeout=600)
    sim = _with_indels(workdir / "resources/impute/simulated/panel.vcf.gz", workdir / "sim_indels.vcf.gz")
    panel = pd.read_csv(workdir / "resources/impute/simulated/panel.txt", sep=r"\s+")
    targets = list(panel["sample"].iloc[::6])  # 15 targets, 5 of each population
    reference = [s for s in panel["sample"] if s not in targets]
    d = workdir / "mine"
    d.mkdir()
    (d / "ref.txt").write_text("\n".join(reference) + "\n")
    (d / "tgt.txt").write_text("\n".join(targets) + "\n")
    (d / "rename.txt").write_text("chr21\tchr22\n")
    parts = {"chr21": f"chr21:1-{MID - 1}", "chr22": f"chr21:{MID}-"}
    for chrom, region in parts.items():
        rename = ["--rename-chrs", str(d / "rename.txt")] if chrom == "chr22" else []
        for who, out in (("ref.txt", f"ref.{chrom}.vcf.gz"), ("tgt.txt", f"truth.{chrom}.vcf.gz")):
            view = subprocess.Popen(["bcftools", "view", "-r", region, "-S", str(d / who), "-Ou", str(sim)],
                                    stdout=subprocess.PIPE)
            _run(["bcftools", "annotate", *rename, "-Oz", "-o", str(d / out), "-"], stdin=view.stdout)
            assert view.wait() == 0
            _run(["bcftools", "index", "-t", str(d / out)])
    # the targets as an array delivers them: unphased, both chromosomes in one file (the density rule thins them)
    concat = subprocess.Popen(["bcftools", "concat", "-Ou", str(d / "truth.chr21.vcf.gz"), str(d / "truth.chr22.vcf.gz")],
                              stdout=subprocess.PIPE)
    _run(["bcftools", "+setGT", "-Oz", "-o", str(d / "targets.vcf.gz"), "-", "--", "-t", "a", "-n", "u"],
         stdin=concat.stdout)
    assert concat.wait() == 0
    _run(["bcftools", "index", "-t", str(d / "targets.vcf.gz")])
    return d


def _with_indels(vcf, out, every: int = 10):
    """``vcf`` with every ``every``-th record's ALT made REF + 'T' (an insertion), bgzipped and indexed as ``out``."""
    lines = _run(["bcftools", "view", str(vcf)]).stdout.splitlines(keepends=True)
    n = 0
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            n += 1
            if n % every == 0:
                cols = line.split("\t")
                cols[4] = cols[3] + "T"
                lines[i] = "\t".join(cols)
    plain = out.with_suffix("")
    plain.write_text("".join(lines))
    _run(["bgzip", "-f", str(plain)])
    _run(["bcftools", "index", "-t", str(out)])
    return out


def _config(workdir, files, chromosomes, name):
    cfg = {"impute": {
        **SIM["impute"],
        "evaluate": {"bootstrap": 20},
        "ingest": {"panel_subset": True},  # the simulated panel file lists the targets too
        "model": {"enabled": True, "variants": {"ragbert": {}}, "pairs_per_epoch": 256, "threads": 1,
                  "train": {"max_epochs": 1, "warmup_steps": 2, "device": "cpu"}},
        "targets": {"source": "files", "vcf": str(files / "targets.vcf.gz"), "truth": str(files / "truth.{chrom}.vcf.gz"),
                    "array_sites": {"min_maf": 0.05, "spacing_bp": 1200}, "chromosomes": chromosomes,
                    "methods": ["beagle", "minimac4", "ragbert"],
                    "chunks": {"size_mb": 0.06, "flank_mb": 0.02, "min_target_sites": 5}},
        "reference": {"vcf": str(files / "ref.{chrom}.vcf.gz"), "panel": str(workdir / "resources/impute/simulated/panel.txt"),
                      "genetic_map": None},
    }}
    return write_config(workdir / f"{name}.yaml", cfg)


def _jobs_by_chrom(res) -> set[tuple[str, str]]:
    """(rule, chrom) of every job a dry run plans (jobs without a chrom wildcard: chrom '')."""
    out = res.stdout + res.stderr
    jobs = set()
    for block in re.split(r"\n(?=(?:local)?rule |checkpoint )", out):
        m = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block.strip())
        if m:
            c = re.search(r"wildcards:.*?chrom=([\w.]+)", block)
            jobs.add((m.group(1), c.group(1) if c else ""))
    return jobs


def _records(vcf):
    """Biallelic records (the peers also impute the panel's multiallelic sites, which our model leaves out)."""
    reader = cyvcf2.VCF(str(vcf))
    rows = [(r.CHROM, r.POS, r.REF, r.ALT[0]) for r in reader if len(r.ALT) == 1]
    samples = list(reader.samples)
    reader.close()
    return rows, samples


@pytest.fixture(scope="module")
def one_chrom(workdir, files):
    snakemake(workdir, TARGET, configs=[_config(workdir, files, ["chr21"], "one")], timeout=900)
    return pd.read_csv(workdir / "results/impute_targets_eval.tsv", sep="\t")


def test_every_method_imputes_your_targets_of_one_chromosome(one_chrom, workdir, files):
    assert set(one_chrom["method"]) == {"beagle", "minimac4", "ragbert"}
    all_rows = one_chrom[one_chrom["bin"] == "all"].set_index("method")
    assert (all_rows["r2"] > 0.6).all(), all_rows["r2"]
    assert all_rows["n_sites"].nunique() == 1  # the same untyped sites scored for every method
    ours, samples = _records(workdir / "results/imputed/ragbert/chr21.vcf.gz")
    beagle, _ = _records(workdir / "results/imputed/beagle/chr21.vcf.gz")
    assert ours == beagle and len(samples) == 15 and {r[0] for r in ours} == {"chr21"}
    cfg = json.loads((workdir / "results/impute_targets/model/ragbert/best/config.json").read_text())
    assert len(cfg["panels"]) == 1


def test_adding_a_chromosome_runs_its_jobs_and_no_peer_job_of_the_other(one_chrom, workdir, files):
    two = _config(workdir, files, ["chr21", "chr22"], "two")
    jobs = _jobs_by_chrom(snakemake(workdir, "-n", TARGET, configs=[two]))
    chr21 = {rule for rule, chrom in jobs if chrom == "chr21"}
    # the one model over all the panel's chromosomes retrains, so it imputes chr21 again; nothing else of chr21 runs
    assert chr21 == {"impute_targets_model", "impute_targets_evaluate"}, chr21
    assert {"impute_targets_qc", "impute_targets_phase", "impute_targets_chunks", "impute_targets_ref_h5"} <= {
        rule for rule, chrom in jobs if chrom == "chr22"}
    assert ("impute_targets_train", "") in jobs
    assert ("impute_targets_inputs", "") not in jobs


def test_one_model_over_both_chromosomes_imputes_each(one_chrom, workdir, files):
    two = _config(workdir, files, ["chr21", "chr22"], "two")
    snakemake(workdir, TARGET, configs=[two], timeout=900)
    table = pd.read_csv(workdir / "results/impute_targets_eval.tsv", sep="\t")
    cfg = json.loads((workdir / "results/impute_targets/model/ragbert/best/config.json").read_text())
    assert len(cfg["panels"]) == 2  # one checkpoint, trained on the windows of both
    for chrom in ("chr21", "chr22"):
        rows, samples = _records(workdir / f"results/imputed/ragbert/{chrom}.vcf.gz")
        panel, _ = _records(files / f"ref.{chrom}.vcf.gz")  # every biallelic site of the panel, once, in order
        assert rows == panel and rows == sorted(rows, key=lambda r: r[1]) and {r[0] for r in rows} == {chrom}
        assert sum(len(r[3]) > 1 for r in rows) >= len(rows) // 12  # the insertions are imputed too
    all_rows = table[table["bin"] == "all"]
    assert set(all_rows["method"]) == {"beagle", "minimac4", "ragbert"}
    assert (all_rows["r2"] > 0.6).all(), all_rows
    assert np.isfinite(all_rows["r2"]).all()
    assert (workdir / "results/impute_targets_r2_along.png").stat().st_size > 0
    # the peers' chr21 outputs were not remade
    assert planned_jobs(snakemake(workdir, "-n", TARGET, configs=[two])) == {}
