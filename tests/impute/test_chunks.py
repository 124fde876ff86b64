"""Chunked imputation: chunk tables, Beagle pre-phasing, regions, core cutting and gathering, on real tools."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import cyvcf2
import numpy as np
import pysam
import pytest

from omicslm.errors import InputError
from omicslm.impute import baselines
from omicslm.impute.baselines import compress_reference_minimac4, run_beagle, run_minimac4
from omicslm.impute.chunks import CHUNK_COLUMNS, cut_core, gather_cores, make_chunks, read_chunks, write_chunks
from omicslm.impute.phasing import _first_unphased, phase_targets
from omicslm.io.vcf import write_vcf
from tests.impute.simfixture import simulate_panel_and_targets

CONTIG = "20"
N_PANEL, N_TARGET = 100, 30
SEQ_LEN = 400_000
TYPED_EVERY = 5
SIZE_BP, FLANK_BP, MIN_TARGET = 200_000, 50_000, 10
#: Chunked vs one-window Beagle: r^2 of the dosages at untyped sites must exceed this, and this share
#: of untyped dosages must agree within DS_TOL. Beagle re-estimates its model per window (em=true), so the
#: two runs differ a little everywhere, not only near the chunk edges (measured: r^2 0.96-0.98, 97-98 %
#: within 0.1 over msprime seeds 1-4).
MIN_R2_CHUNKED, DS_TOL, MIN_SHARE_WITHIN = 0.95, 0.1, 0.93

needs_beagle = pytest.mark.skipif(
    shutil.which("java") is None or (shutil.which("beagle") is None and not baselines.BEAGLE_JAR.is_file()),
    reason="Beagle is not installed (Debian: scripts/install_system_tools.sh; or run with --sdm conda)",
)
needs_bcftools = pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
needs_minimac4 = pytest.mark.skipif(shutil.which("minimac4") is None, reason="minimac4 is not installed")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """130 msprime diploids over 400 kb: 100 panel samples, 30 phased targets typed at every 5th site."""
    d = tmp_path_factory.mktemp("chunks_sim")
    s = simulate_panel_and_targets(d, n_panel=N_PANEL, n_target=N_TARGET, length=SEQ_LEN, typed_every=TYPED_EVERY,
                                   contig=CONTIG)
    return dict(dir=d, pos=s["pos"], typed=s["typed"], names=s["names"], panel_vcf=s["panel_vcf"],
                target_vcf=s["target_vcf"], truth=s["hap"][:, N_PANEL:])


def _records(path):
    """(positions, keys (pos, ref, alt), DS (n_sites, n_samples) or None, GT alleles, phased flags) of a VCF."""
    vcf = cyvcf2.VCF(str(path))
    pos, keys, ds, gt = [], [], [], []
    has_ds = "DS" in [h["ID"] for h in vcf.header_iter() if h["HeaderType"] == "FORMAT"]
    for rec in vcf:
        pos.append(rec.POS)
        keys.append((rec.POS, rec.REF, ",".join(rec.ALT)))
        if has_ds:
            values = rec.format("DS")  # None when the header declares DS but the records carry none
            ds.append(values[:, 0] if values is not None else np.full(len(vcf.samples), np.nan))
        gt.append(rec.genotype.array())
    vcf.close()
    gt = np.array(gt)
    return np.array(pos), keys, (np.array(ds, float) if has_ds else None), gt[..., :2], gt[..., 2]


def _bcftools(*args):
    return subprocess.run(["bcftools", *map(str, args)], capture_output=True, text=True)


def _no_scratch(folder):
    return not [p for p in Path(folder).iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- make_chunks


def test_make_chunks_tiles_the_span_and_clips_flanks():
    panel = [1000, 1500, 2999, 3000, 3001, 5000, 6800, 7400]
    target = [1000, 1500, 2999, 3000, 5000, 7400]
    df = make_chunks(panel, target, contig="chr20", size_bp=2000, flank_bp=500, min_target_sites=2)
    assert list(df.columns) == list(CHUNK_COLUMNS)
    assert list(df["chunk"]) == ["chr20_000", "chr20_001", "chr20_002", "chr20_003"]
    assert (df["contig"] == "chr20").all()
    assert list(df["core_start"]) == [1000, 3000, 5000, 7000]
    assert list(df["core_end"]) == [2999, 4999, 6999, 7400]  # last core shortened to the last panel site
    assert list(df["start"]) == [1000, 2500, 4500, 6500]  # first flank clipped to the span
    assert list(df["end"]) == [3499, 5499, 7400, 7400]  # last two clipped
    # cores tile first..last panel position: no gap, no overlap
    assert (df["core_start"].to_numpy()[1:] == df["core_end"].to_numpy()[:-1] + 1).all()
    assert df["core_start"].iloc[0] == 1000 and df["core_end"].iloc[-1] == 7400
    assert list(df["n_panel_sites"]) == [5, 4, 3, 2]
    assert list(df["n_target_sites"]) == [4, 3, 2, 1]
    assert list(df["kept"]) == [True, True, True, False]
    assert df.attrs["n_dropped"] == 1


def test_make_chunks_single_core_and_padding():
    df = make_chunks([10, 20], [10], contig="1", size_bp=1_000, flank_bp=0, min_target_sites=1)
    assert df[["core_start", "core_end", "start", "end", "n_panel_sites", "n_target_sites"]].values.tolist() == [
        [10, 20, 10, 20, 2, 1]]
    df = make_chunks(np.arange(1, 1002), [1], contig="1", size_bp=1, flank_bp=0, min_target_sites=1)
    assert len(df) == 1001 and df["chunk"].iloc[-1] == "1_1000" and df["chunk"].iloc[0] == "1_0000"
    assert df["kept"].sum() == 1 and df.attrs["n_dropped"] == 1000


@pytest.mark.parametrize("kwargs", [dict(size_bp=0), dict(flank_bp=-1), dict(min_target_sites=0)])
def test_make_chunks_rejects_bad_parameters(kwargs):
    params = dict(contig="1", size_bp=10, flank_bp=0, min_target_sites=1) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        make_chunks([1, 2], [1], **params)
    with pytest.raises(ValueError, match="no panel position"):
        make_chunks([], [1], contig="1", size_bp=10, flank_bp=0, min_target_sites=1)


# --------------------------------------------------------------------------- chunk table


def test_write_and_read_chunks_round_trip(sim, tmp_path):
    out = tmp_path / "chunks.tsv"
    df = write_chunks(sim["target_vcf"], sim["panel_vcf"], out, contig=CONTIG, size_bp=SIZE_BP, flank_bp=FLANK_BP,
                      min_target_sites=MIN_TARGET)
    assert out.read_text().splitlines()[0].split("\t") == list(CHUNK_COLUMNS)
    back = read_chunks(out)
    assert back.equals(df)
    assert back["contig"].tolist() == [CONTIG, CONTIG] and back["kept"].tolist() == [True, True]
    pos, typed = sim["pos"], sim["pos"][sim["typed"]]
    assert back["core_start"].iloc[0] == pos[0] and back["core_end"].iloc[-1] == pos[-1]
    for row in back.itertuples():
        assert row.n_panel_sites == ((pos >= row.start) & (pos <= row.end)).sum()
        assert row.n_target_sites == ((typed >= row.start) & (typed <= row.end)).sum()
    assert _no_scratch(tmp_path)


def test_write_chunks_refuses_when_none_kept(sim, tmp_path):
    out = tmp_path / "chunks.tsv"
    with pytest.raises(InputError, match="no chunk of 20 is kept") as exc:
        write_chunks(sim["target_vcf"], sim["panel_vcf"], out, contig=CONTIG, size_bp=SIZE_BP, flank_bp=0,
                     min_target_sites=10_000)
    assert "target.vcf.gz" in str(exc.value)
    with pytest.raises(InputError, match="no record on contig 'chr9'"):
        write_chunks(sim["target_vcf"], sim["panel_vcf"], out, contig="chr9", size_bp=SIZE_BP, flank_bp=0,
                     min_target_sites=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "edit, problem, record",
    [
        (lambda t: t.replace("\tkept", "\tkeep"), "missing column", None),
        (lambda t: t.replace("\t1500\t", "\t15x0\t", 1), "not an integer", "c_000"),
        (lambda t: t.replace("True", "yes", 1), "not true/false", "c_000"),
        (lambda t: t.replace("c_001", "c_000"), "more than once", "c_000"),
        (lambda t: t.replace("\t1501\t", "\t1601\t", 1), "does not start right after", "c_001"),
    ],
)
def test_read_chunks_validates(tmp_path, edit, problem, record):
    good = make_chunks([1, 1500, 3001], [1, 1500, 3001], contig="c", size_bp=1500, flank_bp=100, min_target_sites=1)
    path = tmp_path / "chunks.tsv"
    good.to_csv(path, sep="\t", index=False)
    assert read_chunks(path)["core_start"].tolist() == [1, 1501, 3001]
    path.write_text(edit(path.read_text()))
    with pytest.raises(InputError, match=problem) as exc:
        read_chunks(path)
    assert str(path) in str(exc.value)
    if record:
        assert f"record {record}" in str(exc.value)


# --------------------------------------------------------------------------- phasing


def _unphase(src, dst, *, missing_every):
    """Rewrite ``src`` with every GT unphased (``/``) and every ``missing_every``-th call set to ``./.``."""
    n, lines = 0, []
    with gzip.open(src, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                lines.append(line)
                continue
            fields = line.rstrip("\n").split("\t")
            for j in range(9, len(fields)):
                fields[j] = "./." if n % missing_every == 0 else fields[j].replace("|", "/")
                n += 1
            lines.append("\t".join(fields) + "\n")
    plain = Path(str(dst).removesuffix(".gz"))
    plain.write_text("".join(lines))
    pysam.tabix_compress(str(plain), str(dst), force=True)
    plain.unlink()
    return dst


@needs_beagle
def test_phase_targets_phases_and_fills_missing(sim, tmp_path):
    unphased = _unphase(sim["target_vcf"], tmp_path / "unphased.vcf.gz", missing_every=37)
    assert "an unphased call" in _first_unphased(unphased) or "a missing call" in _first_unphased(unphased)
    out = tmp_path / "out" / "phased.vcf.gz"
    info = phase_targets(unphased, sim["panel_vcf"], out, threads=1, mem_gb=1, seed=5)
    assert info["phased_by"] == "beagle" and info["seconds"] > 0
    assert Path(f"{out}.tbi").is_file() and _no_scratch(out.parent)
    assert _first_unphased(out) is None
    view = _bcftools("view", "-H", out)
    assert view.returncode == 0 and len(view.stdout.splitlines()) == len(sim["typed"])
    assert _bcftools("index", "-n", out).stdout.strip() == str(len(sim["typed"]))
    pos, _, _, gt_out, phased = _records(out)
    _, _, _, gt_in, _ = _records(unphased)
    np.testing.assert_array_equal(pos, sim["pos"][sim["typed"]])
    assert (gt_out >= 0).all() and phased.all()
    called = (gt_in >= 0).all(axis=2)
    assert 0.02 < (~called).mean() < 0.04  # every 37th call was blanked
    # Beagle keeps every given genotype (phase may change) and fills the blanks from the panel
    np.testing.assert_array_equal(gt_out.sum(axis=2)[called], gt_in.sum(axis=2)[called])
    truth = sim["truth"][sim["typed"]].sum(axis=2)
    assert (gt_out.sum(axis=2)[~called] == truth[~called]).mean() > 0.9
    # the phase follows the truth: few switches between consecutive heterozygous calls
    het = truth == 1
    switches = []
    for s in range(N_TARGET):
        h = het[:, s] & called[:, s]
        agree = gt_out[h, s, 0] == sim["truth"][sim["typed"]][h, s, 0]
        switches.append(np.mean(agree[1:] != agree[:-1]))
    assert np.mean(switches) < 0.05, f"switch error rate {np.mean(switches):.3f}"


def test_phase_targets_copies_phased_input(sim, tmp_path):
    out = tmp_path / "phased.vcf.gz"
    info = phase_targets(sim["target_vcf"], tmp_path / "no-panel-needed.vcf.gz", out)
    assert info == {"phased_by": "input"}
    assert out.read_bytes() == Path(sim["target_vcf"]).read_bytes()
    assert Path(f"{out}.tbi").is_file() and _no_scratch(tmp_path)
    with pysam.VariantFile(str(out)) as vf:
        assert len(list(vf.fetch(CONTIG))) == len(sim["typed"])


def test_first_unphased_finds_half_missing_and_unphased(tmp_path):
    head = "##fileformat=VCFv4.2\n##contig=<ID=1>\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">\n" \
           "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\n"
    cases = {"0|1\t1|1": None, "0|1\t0|.": "a missing call at 1:10 (sample b)",
             "0/1\t1|1": "an unphased call at 1:10 (sample a)"}
    for calls, expected in cases.items():
        path = tmp_path / "t.vcf"
        path.write_text(head + f"1\t10\t.\tA\tG\t.\t.\t.\tGT\t{calls}\n")
        assert _first_unphased(path) == expected
    with pytest.raises(InputError, match="does not exist"):
        phase_targets(tmp_path / "missing.vcf.gz", path, tmp_path / "o.vcf.gz")


# --------------------------------------------------------------------------- regions, cores, gather


@pytest.fixture(scope="module")
def chunked(sim):
    """Beagle run per chunk (region) and cut to its core, plus one whole-chromosome run (region=None)."""
    d = sim["dir"] / "chunked"
    d.mkdir()
    df = write_chunks(sim["target_vcf"], sim["panel_vcf"], d / "chunks.tsv", contig=CONTIG, size_bp=SIZE_BP,
                      flank_bp=FLANK_BP, min_target_sites=MIN_TARGET)
    windows, cores = [], []
    for row in read_chunks(d / "chunks.tsv").itertuples():
        window = d / f"{row.chunk}.vcf.gz"
        run_beagle(sim["panel_vcf"], sim["target_vcf"], window, mem_gb=1, seed=3,
                   region=(row.contig, row.start, row.end))
        windows.append(window)
        cores.append(cut_core(window, d / f"{row.chunk}.core.vcf.gz", contig=row.contig,
                              core_start=row.core_start, core_end=row.core_end))
    whole = d / "whole.vcf.gz"
    run_beagle(sim["panel_vcf"], sim["target_vcf"], whole, mem_gb=1, seed=3)
    return dict(dir=d, chunks=df, windows=windows, cores=cores, whole=whole)


@needs_beagle
@needs_bcftools
def test_region_windows_and_cores(sim, chunked):
    pos = sim["pos"]
    assert len(chunked["chunks"]) == 2
    for row, window, core in zip(chunked["chunks"].itertuples(), chunked["windows"], chunked["cores"]):
        wpos = _records(window)[0]
        np.testing.assert_array_equal(wpos, pos[(pos >= row.start) & (pos <= row.end)])  # chrom=contig:start-end
        cpos = _records(core)[0]
        np.testing.assert_array_equal(cpos, pos[(pos >= row.core_start) & (pos <= row.core_end)])
        assert Path(f"{core}.tbi").is_file()
    # the flanks overlap: sites around the core boundary were imputed twice
    both = np.intersect1d(_records(chunked["windows"][0])[0], _records(chunked["windows"][1])[0])
    assert len(both) > 100


@needs_beagle
@needs_bcftools
def test_gather_cores_gives_every_panel_site_once(sim, chunked, tmp_path):
    out = tmp_path / "chr20.vcf.gz"
    assert gather_cores(chunked["cores"], out) == out
    assert _no_scratch(tmp_path)
    pos, keys, ds, gt, phased = _records(out)
    np.testing.assert_array_equal(pos, sim["pos"])  # every panel site exactly once, sorted
    assert len(set(keys)) == len(keys)
    # the sites both windows imputed (within FLANK_BP of the core boundary) are there once each
    boundary = chunked["chunks"]["core_end"].iloc[0]
    near = pos[np.abs(pos - boundary) <= FLANK_BP]
    assert len(near) > 100 and len(np.unique(near)) == len(near)
    assert np.isin(sim["pos"][np.abs(sim["pos"] - boundary) <= FLANK_BP], near).all()
    assert _bcftools("view", "-H", out).returncode == 0
    assert _bcftools("index", "-n", out).stdout.strip() == str(len(sim["pos"]))
    reindex = _bcftools("index", "-f", "-o", tmp_path / "check.csi", out)
    assert reindex.returncode == 0 and "unsorted" not in reindex.stderr.lower(), reindex.stderr
    with pysam.VariantFile(str(out)) as vf:
        assert list(vf.header.samples) == sim["names"][N_PANEL:]
        assert {"GT", "DS", "GP"} <= set(vf.header.formats)
    assert phased.all() and np.all((ds >= 0) & (ds <= 2))
    # typed sites keep the input genotypes
    np.testing.assert_array_equal(gt[sim["typed"]], sim["truth"][sim["typed"]])


@needs_beagle
@needs_bcftools
def test_gathered_dosages_match_one_window_run(sim, chunked, tmp_path):
    out = gather_cores(chunked["cores"], tmp_path / "chr20.vcf.gz")
    pos, _, ds_chunked, _, _ = _records(out)
    whole_pos, _, ds_whole, _, _ = _records(chunked["whole"])
    np.testing.assert_array_equal(pos, whole_pos)
    untyped = np.ones(len(pos), bool)
    untyped[sim["typed"]] = False
    a, b = ds_chunked[untyped].ravel(), ds_whole[untyped].ravel()
    r2 = np.corrcoef(a, b)[0, 1] ** 2
    within = np.mean(np.abs(a - b) <= DS_TOL)
    assert r2 > MIN_R2_CHUNKED, f"r2 chunked vs one window {r2:.3f}"
    assert within >= MIN_SHARE_WITHIN, f"only {within:.1%} of dosages within {DS_TOL}"
    # both are real imputations: each tracks the truth at untyped sites
    truth = sim["truth"].sum(axis=2)[untyped].ravel()
    assert np.corrcoef(a, truth)[0, 1] ** 2 > 0.9 and np.corrcoef(b, truth)[0, 1] ** 2 > 0.9


@needs_beagle
@needs_bcftools
def test_gather_cores_rejects_overlapping_windows(chunked, tmp_path):
    out = tmp_path / "bad.vcf.gz"
    first, second = chunked["windows"]  # uncut windows overlap by 2 * FLANK_BP
    with pytest.raises(RuntimeError, match="not a clean tiling") as exc:
        gather_cores([first, second], out)
    assert str(first) in str(exc.value) and str(second) in str(exc.value)
    # a second core repeating the first core's last site
    core = chunked["cores"][0]
    last = int(_records(core)[0][-1])
    repeat = cut_core(core, tmp_path / "repeat" / "last.vcf.gz", contig=CONTIG, core_start=last, core_end=last)
    assert len(_records(repeat)[0]) == 1
    with pytest.raises(RuntimeError, match="present twice") as exc:
        gather_cores([core, repeat], out)
    assert f"{core} then" in str(exc.value) and str(repeat) in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repeat"]


@needs_bcftools
def test_cut_core_keeps_pos_in_core_only(tmp_path):
    samples = ["a"]
    src = write_vcf(tmp_path / "w.vcf.gz", contig="1", positions=np.array([5, 9, 10, 20, 21]),
                    ref=["A", "ACGT", "C", "G", "T"], alt=["G", "A", "T", "A", "C"], samples=samples,
                    haplotypes=np.zeros((5, 1, 2), np.int8))
    out = cut_core(src, tmp_path / "core.vcf.gz", contig="1", core_start=10, core_end=20)
    assert _records(out)[0].tolist() == [10, 20]  # the deletion at 9 spans 10 but belongs to the previous core
    Path(f"{src}.tbi").unlink()  # streamed (-t) when not indexed
    assert _records(cut_core(src, tmp_path / "core2.vcf.gz", contig="1", core_start=1, core_end=9))[0].tolist() \
        == [5, 9]
    with pytest.raises(ValueError, match="start <= end"):
        cut_core(src, tmp_path / "core3.vcf.gz", contig="1", core_start=20, core_end=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["core.vcf.gz", "core.vcf.gz.tbi", "core2.vcf.gz",
                                                          "core2.vcf.gz.tbi", "w.vcf.gz"]


@needs_minimac4
def test_minimac4_region_writes_the_window_only(sim, tmp_path):
    msav = tmp_path / "panel.msav"
    compress_reference_minimac4(sim["panel_vcf"], msav)
    start, end = 150_000, 260_000
    out = tmp_path / "mm.vcf.gz"
    run_minimac4(msav, sim["target_vcf"], out, region=(CONTIG, start, end))
    pos, _, ds, _, _ = _records(out)
    np.testing.assert_array_equal(pos, sim["pos"][(sim["pos"] >= start) & (sim["pos"] <= end)])
    assert np.all((ds >= 0) & (ds <= 2))
    with pytest.raises(ValueError, match="start <= end"):
        run_minimac4(msav, sim["target_vcf"], out, region=(CONTIG, 10, 5))
