"""Imputing your own samples: unphased array targets -> QC -> phasing -> chunks -> one VCF per chromosome.

The default config's targets are the held-out test samples of the simulated panel, written unphased at
the array sites as a genotyping array gives them. One chunked run (3 chunks of 0.1 Mb over 0.3 Mb) is
shared by the tests; then the chunk size is changed to one chunk, which must rerun what depends on the
chunks and nothing above them, and give the same accuracy. Tests run in file order.
"""

import json
import subprocess

import cyvcf2
import numpy as np
import pandas as pd
import pytest

from tests.workflow.conftest import planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

TARGET = "impute_targets_all"
TINY = {"impute": {
    "simulate": {"length": 300_000, "populations": {"YRI": 40, "CEU": 40, "CHB": 40}},
    "evaluate": {"bootstrap": 20},
    "model": {"enabled": False},
    "targets": {"source": "heldout", "chunks": {"size_mb": 0.1, "flank_mb": 0.03, "min_target_sites": 5}},
}}
ONE_CHUNK = {"impute": {"targets": {"chunks": {"size_mb": 10.0, "flank_mb": 0.03, "min_target_sites": 5}}}}
CHUNK_RULES = {"impute_targets_chunks", "impute_targets_beagle", "impute_targets_minimac4", "impute_targets_gather",
               "impute_targets_evaluate", "impute_targets_eval", "impute_targets_plot", "impute_targets_all"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("targets")


@pytest.fixture(scope="module")
def tiny(workdir):
    return write_config(workdir / "tiny.yaml", TINY)


@pytest.fixture(scope="module")
def chunked(workdir, tiny):
    snakemake(workdir, TARGET, configs=[tiny], timeout=900)
    return pd.read_csv(workdir / "results/impute_targets_eval.tsv", sep="\t")


def _records(vcf):
    reader = cyvcf2.VCF(str(vcf))
    rows = [(r.CHROM, r.POS, r.REF, r.ALT[0]) for r in reader]
    samples = list(reader.samples)
    reader.close()
    return rows, samples


def test_targets_are_unphased_and_the_phasing_step_phases_them(chunked, workdir):
    base = workdir / "results/impute_targets"
    targets = subprocess.run(["bcftools", "query", "-f", "[%GT ]\n", base / "inputs/targets.vcf.gz"],
                             capture_output=True, text=True, check=True).stdout.split()
    phased = subprocess.run(["bcftools", "query", "-f", "[%GT ]\n", base / "chr21/phased.vcf.gz"],
                            capture_output=True, text=True, check=True).stdout.split()
    qc = pd.read_csv(base / "chr21/qc.tsv", sep="\t")
    kept = int((qc["action"] == "match").sum())
    assert targets and all("/" in g for g in targets)  # as an array gives them
    assert len(targets) == len(qc) * 18 and len(phased) == kept * 18  # 18 target samples
    assert all("|" in g and "." not in g for g in phased)


def test_one_vcf_per_chromosome_holds_every_panel_site_once_across_chunk_boundaries(chunked, workdir):
    chunks = pd.read_csv(workdir / "results/impute_targets/chr21/chunks.tsv", sep="\t")
    assert chunks["kept"].sum() >= 2  # the multi-chunk path is what runs
    panel, _ = _records(workdir / "results/impute/inputs/panel.vcf.gz")
    panel_sites = [p for p in panel if chunks.loc[chunks.kept, "core_start"].min() <= p[1]
                   <= chunks.loc[chunks.kept, "core_end"].max()]
    for method in ("beagle", "minimac4"):
        vcf = workdir / f"results/imputed/{method}/chr21.vcf.gz"
        assert (workdir / f"results/imputed/{method}/chr21.vcf.gz.tbi").exists()
        subprocess.run(["bcftools", "view", "-h", vcf], check=True, capture_output=True)
        rows, samples = _records(vcf)
        assert [r[1] for r in rows] == sorted(r[1] for r in rows)
        assert rows == panel_sites  # every panel site of the kept cores, exactly once, panel alleles
        for boundary in chunks.loc[chunks.kept, "core_end"].iloc[:-1]:
            around = [r[1] for r in rows if boundary - 2000 <= r[1] <= boundary + 2000]
            assert around and len(around) == len(set(around))
        assert len(samples) == 18  # 15% of each 40-sample population


def test_target_qc_counts_every_site_and_the_table_scores_both_peers(chunked, workdir):
    qc = pd.read_csv(workdir / "results/impute_targets/chr21/qc.tsv", sep="\t")
    summary = json.loads((workdir / "results/impute_targets/chr21/qc.summary.json").read_text())
    # held-out targets come from the panel itself: every site matches, but for the A/T and C/G sites whose
    # allele frequency cannot settle the strand (dropped, and imputed like any untyped site)
    assert set(qc["action"]) <= {"match", "ambiguous"} and (qc["action"] == "match").sum() == summary["kept"]
    assert summary["dropped"]["ambiguous"] == (qc["action"] == "ambiguous").sum() and summary["samples_dropped"] == []
    assert set(chunked["method"]) == {"beagle", "minimac4"} and set(chunked["chrom"]) == {"chr21"}
    all_rows = chunked[chunked["bin"] == "all"].set_index("method")
    assert (all_rows["r2"] > 0.7).all()  # both peers impute the unphased, re-phased targets well
    assert (all_rows["n_sites"] > 0).all()


def test_changing_the_chunk_size_reruns_only_what_depends_on_chunks(chunked, workdir, tiny):
    one = write_config(workdir / "one_chunk.yaml", ONE_CHUNK)
    jobs = planned_jobs(snakemake(workdir, "-n", TARGET, configs=[tiny, one]))
    assert set(jobs) <= CHUNK_RULES and {"impute_targets_chunks", "impute_targets_gather"} <= set(jobs)


def test_one_chunk_gives_the_same_accuracy_as_three(chunked, workdir, tiny):
    one = write_config(workdir / "one_chunk.yaml", ONE_CHUNK)
    snakemake(workdir, TARGET, configs=[tiny, one], timeout=900)
    single = pd.read_csv(workdir / "results/impute_targets_eval.tsv", sep="\t")
    chunks = pd.read_csv(workdir / "results/impute_targets/chr21/chunks.tsv", sep="\t")
    assert chunks["kept"].sum() == 1
    key = ["method", "bin"]
    both = chunked.merge(single, on=key, suffixes=("_chunked", "_one"))
    both = both[both["n_sites_chunked"] > 0].set_index(key)
    assert (both["n_sites_chunked"] == both["n_sites_one"]).all()  # the same sites scored
    # minimac4 imputes a region with its own context around it: the same r2 in every bin
    m4 = both.loc["minimac4"]
    assert np.allclose(m4["r2_chunked"], m4["r2_one"], atol=0.01), m4[["r2_chunked", "r2_one"]]
    # Beagle refits its model in each window, so on 18 targets x 0.3 Mb its dosages move a little everywhere
    # (not at the chunk edges: measured r2 .97 between the two runs' dosages, em=false or a fixed ne alike);
    # the aggregate r2 stays close. The .01-per-bin comparison at 1 Mb chunks is config/1kg_chr20_targets.yaml's.
    bg = both.loc[("beagle", "all")]
    assert abs(bg["r2_chunked"] - bg["r2_one"]) < 0.05, bg


# the model, trained just enough to be applied: one variant, one short epoch
MODEL = {"impute": {
    "model": {"enabled": True, "pairs_per_epoch": 256, "threads": 1,
              "train": {"max_epochs": 1, "warmup_steps": 2, "device": "cpu"}},
    "targets": {"methods": ["minimac4", "ragbert"]},
}}


def test_the_trained_model_imputes_the_phased_targets_of_its_panel(chunked, workdir, tiny):
    model = write_config(workdir / "model.yaml", MODEL)
    snakemake(workdir, TARGET, configs=[tiny, model], timeout=900)
    table = pd.read_csv(workdir / "results/impute_targets_eval.tsv", sep="\t")
    assert set(table["method"]) == {"minimac4", "ragbert"}
    all_rows = table[table["bin"] == "all"].set_index("method")
    assert all_rows.loc["ragbert", "r2"] > 0.6 and all_rows.loc["ragbert", "n_sites"] == all_rows.loc["minimac4", "n_sites"]
    rows, samples = _records(workdir / "results/imputed/ragbert/chr21.vcf.gz")
    panel, _ = _records(workdir / "results/impute/inputs/panel.vcf.gz")
    assert rows == panel and len(samples) == 18  # the whole chromosome at once, every panel site
    trained = list((workdir / "results/impute").glob("*/model/best"))
    assert [p.parent.parent.name for p in trained] == ["ragbert"]  # only the variant the targets use was trained
