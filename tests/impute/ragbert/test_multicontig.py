"""One model trained on the windows of several contigs (a reference panel split by chromosome), applied to each
contig, to targets that are not samples of the panel (population inferred from their alleles)."""

import copy
import json

import cyvcf2
import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.impute.ragbert.predict import impute_ragbert, infer_populations
from omicslm.impute.ragbert.train import train_ragbert
from omicslm.impute.ragbert.windows import write_windows
from omicslm.impute.split import select_array_sites, split_samples, write_target_vcf
from omicslm.io.vcf import write_vcf
from tests.impute.h5fixture import make_panel_h5
from tests.impute.ragbert.test_ragbert import BINS, MODEL, _mosaic_haplotypes

POPS = ["A"] * 20 + ["B"] * 20


def _contig(d, contig, seed, n_var=72):
    d.mkdir()
    hap = _mosaic_haplotypes(n_var, 40, seed=seed)
    h5 = make_panel_h5(d / "panel.h5", hap, pops=POPS, contig=contig)
    split_samples(h5, d / "split.tsv", test_fraction=0.2, validation_fraction=0.15, seed=1)
    select_array_sites(h5, d / "split.tsv", d / "array.tsv", manifest=None, min_maf=0.05, spacing_bp=3000)
    write_windows(h5, d / "windows.tsv", sites=24, overlap=8)
    write_target_vcf(h5, d / "split.tsv", d / "array.tsv", d / "targets.vcf.gz")
    return {"h5": h5, "split": d / "split.tsv", "array": d / "array.tsv", "windows": d / "windows.tsv",
            "targets": d / "targets.vcf.gz"}


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    contigs = [_contig(d / "c21", "21", seed=0), _contig(d / "c22", "22", seed=1)]
    model = copy.deepcopy(MODEL)
    model["train"]["max_epochs"] = 1
    train_ragbert(*([c[k] for c in contigs] for k in ("h5", "split", "array", "windows")), out_dir=d / "model",
                  work_dir=d / "work", variant="ragbert", model_block=model, maf_bins=BINS, threads=1)
    return d, contigs


def test_one_checkpoint_records_every_contig_and_imputes_each(two, tmp_path):
    d, contigs = two
    cfg = json.loads((d / "model" / "best" / "config.json").read_text())
    assert [p["contig"] for p in cfg["panels"]] == ["21", "22"] and set(cfg["genetic_map_sha1s"]) == {"21", "22"}
    for c in contigs:
        out = tmp_path / f"{c['h5'].parent.name}.vcf.gz"
        impute_ragbert(c["h5"], c["split"], c["targets"], c["windows"], d / "model" / "best", out, tmp_path / "rt.json",
                       method="ragbert", batch_size=32, threads=1, device="cpu")
        rows = list(cyvcf2.VCF(str(out)))
        assert len(rows) == 72 and {r.CHROM for r in rows} == {cyvcf2.VCF(str(c["targets"])).seqnames[0]}


def test_a_contig_the_model_was_not_trained_on_is_refused(two, tmp_path):
    d, _ = two
    other = _contig(tmp_path / "c23", "23", seed=2)
    with pytest.raises(InputError, match="trained on another panel"):
        impute_ragbert(other["h5"], other["split"], other["targets"], other["windows"], d / "model" / "best",
                       tmp_path / "x.vcf.gz", tmp_path / "rt.json", method="ragbert", batch_size=32, device="cpu")
    assert not (tmp_path / "x.vcf.gz").exists()


def test_targets_outside_the_panel_get_an_inferred_population(two, tmp_path, caplog):
    # a user's samples: not in the HDF5, so no population label; the same haplotypes under new names
    d, contigs = two
    c = contigs[0]
    src = cyvcf2.VCF(str(c["targets"]))
    recs = list(src)
    hap = np.stack([r.genotype.array()[:, :2] for r in recs]).astype(np.int8)
    renamed = tmp_path / "mine.vcf.gz"
    write_vcf(renamed, contig=src.seqnames[0], positions=np.array([r.POS for r in recs]), ref=[r.REF for r in recs],
              alt=[r.ALT[0] for r in recs], samples=[f"mine{i}" for i in range(len(src.samples))], haplotypes=hap)
    caplog.set_level("INFO")
    out = tmp_path / "mine.imputed.vcf.gz"
    impute_ragbert(c["h5"], c["split"], renamed, c["windows"], d / "model" / "best", out, tmp_path / "rt.json",
                   method="ragbert", batch_size=32, device="cpu")
    assert "inferred populations of 8 targets" in caplog.text
    ds = np.stack([r.format("DS")[:, 0] for r in cyvcf2.VCF(str(out))])
    assert ds.shape == (72, 8) and ((ds >= 0) & (ds <= 2)).all()


def test_different_panel_samples_across_contigs_are_a_clear_error(two, tmp_path):
    _, contigs = two
    d = tmp_path / "c22b"
    d.mkdir()
    hap = _mosaic_haplotypes(72, 40, seed=3)
    h5 = make_panel_h5(d / "panel.h5", hap, pops=POPS, contig="22")
    split_samples(h5, d / "split.tsv", test_fraction=0.2, validation_fraction=0.15, seed=99)  # another split
    select_array_sites(h5, d / "split.tsv", d / "array.tsv", manifest=None, min_maf=0.05, spacing_bp=3000)
    write_windows(h5, d / "windows.tsv", sites=24, overlap=8)
    c = contigs[0]
    with pytest.raises(InputError, match="samples of 22 differ from those of 21"):
        train_ragbert([c["h5"], h5], [c["split"], d / "split.tsv"], [c["array"], d / "array.tsv"],
                      [c["windows"], d / "windows.tsv"], out_dir=tmp_path / "m", work_dir=tmp_path / "w",
                      variant="ragbert", model_block=MODEL, maf_bins=BINS)


def test_population_inference_picks_the_population_whose_frequencies_fit():
    rng = np.random.default_rng(0)
    af_pop = np.stack([rng.uniform(0.05, 0.3, 400), rng.uniform(0.6, 0.95, 400)], axis=1)
    truth = np.array([0, 1, 1, 0, 1])
    hap = (rng.random((400, 5, 2)) < af_pop[:, truth][:, :, None]).astype(np.int8)
    np.testing.assert_array_equal(infer_populations(hap, af_pop), truth)
