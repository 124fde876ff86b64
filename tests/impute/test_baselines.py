"""Peer baselines: Beagle and minimac4 really run on a tiny msprime panel; AF floor and helpers."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest

from omicslm.errors import InputError
from omicslm.impute import baselines
from omicslm.impute.baselines import (
    compress_reference_minimac4,
    convert_genetic_map,
    run_beagle,
    run_minimac4,
    write_runtime,
)
from omicslm.impute.af_floor import write_af_floor
from omicslm.impute.layout import FORMAT_VERSION, TYPE_NAMES
from omicslm.impute.split import read_split
from tests.impute.simfixture import simulate_panel_and_targets

CONTIG = "20"
N_PANEL, N_TARGET = 50, 10
TYPED_EVERY = 5  # every 5th site is on the "array"
MIN_R2 = 0.5  # a real imputation of common untyped sites clears this easily; the AF floor scores 0
COMMON_MAF = 0.05
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SHARED_MAP = SHARED_DATA / "impute" / "1kg_phase3_chr20_eur" / "chr20.b37.gmap.gz"

needs_beagle = pytest.mark.skipif(
    shutil.which("java") is None or (shutil.which("beagle") is None and not baselines.BEAGLE_JAR.is_file()),
    reason="Beagle is not installed (Debian: scripts/install_system_tools.sh; or run with --sdm conda)",
)
needs_minimac4 = pytest.mark.skipif(
    shutil.which("minimac4") is None,
    reason="minimac4 is not installed (Debian: scripts/install_system_tools.sh; or run with --sdm conda)",
)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """60 msprime diploids over 200 kb: 50 panel samples, 10 targets typed at every 5th site."""
    d = tmp_path_factory.mktemp("sim")
    s = simulate_panel_and_targets(d, n_panel=N_PANEL, n_target=N_TARGET, length=200_000, typed_every=TYPED_EVERY,
                                   contig=CONTIG)
    pos, hap, names, typed = s["pos"], s["hap"], s["names"], s["typed"]
    panel_vcf, target_vcf = s["panel_vcf"], s["target_vcf"]
    # a linear 1 cM/Mb map in SHAPEIT style, chromosome named differently from the VCF on purpose
    raw_map = d / "map.gmap.gz"
    with gzip.open(raw_map, "wt") as fh:
        fh.write("pos\tchr\tcM\n")
        for p in range(5_000, 300_001, 10_000):
            fh.write(f"{p}\tchr{CONTIG}\t{p / 1e6:.6f}\n")
    plink_map = convert_genetic_map(raw_map, d / "map.plink", contig=CONTIG)

    untyped = np.ones(len(pos), bool)
    untyped[typed] = False
    af = hap[:, :N_PANEL].mean(axis=(1, 2))
    return dict(
        dir=d, pos=pos, names=names, panel_vcf=panel_vcf, target_vcf=target_vcf, map=plink_map,
        truth=hap[:, N_PANEL:].sum(axis=2),  # (n_sites, n_target) true alt dosage
        check=untyped & (np.minimum(af, 1 - af) >= COMMON_MAF),
    )


def _read_ds(path):
    """(positions, samples, DS (n_sites, n_samples), GT (n_sites, n_samples, 2)) from an output VCF."""
    with pysam.VariantFile(str(path)) as vf:
        samples = list(vf.header.samples)
        pos, ds, gt = [], [], []
        for rec in vf:
            pos.append(rec.pos)
            ds.append([rec.samples[s]["DS"][0] if isinstance(rec.samples[s]["DS"], tuple) else rec.samples[s]["DS"]
                       for s in samples])
            gt.append([rec.samples[s]["GT"] for s in samples])
    return np.array(pos), samples, np.array(ds, float), np.array(gt)


def _assert_imputed(out_vcf, sim):
    assert Path(str(out_vcf) + ".tbi").is_file()
    pos, samples, ds, _ = _read_ds(out_vcf)
    np.testing.assert_array_equal(pos, sim["pos"])  # every panel site, in order
    assert samples == sim["names"][N_PANEL:]
    assert np.all((ds >= 0) & (ds <= 2))
    assert sim["check"].sum() >= 20, "too few common untyped sites for a meaningful r2"
    r = np.corrcoef(ds[sim["check"]].ravel(), sim["truth"][sim["check"]].ravel())[0, 1]
    assert r**2 > MIN_R2, f"aggregate r2 at common untyped sites is {r**2:.3f}"
    # no scratch directory or temporary file left beside the output
    assert not [p for p in Path(out_vcf).parent.iterdir() if p.name.startswith(".")]
    return r**2


# --------------------------------------------------------------------------- Beagle


@needs_beagle
def test_beagle_imputes_all_panel_sites(sim, tmp_path):
    out = tmp_path / "beagle.vcf.gz"
    seconds = run_beagle(sim["panel_vcf"], sim["target_vcf"], out, genetic_map=sim["map"], threads=1, mem_gb=1,
                         seed=3, log=tmp_path / "beagle.log")
    assert isinstance(seconds, float) and math.isfinite(seconds)  # the run's duration, recorded for the table
    _assert_imputed(out, sim)
    assert "beagle" in (tmp_path / "beagle.log").read_text().lower()


@needs_beagle
def test_beagle_failure_raises_with_output_and_leaves_nothing(sim, tmp_path):
    out = tmp_path / "out" / "beagle.vcf.gz"
    with pytest.raises(RuntimeError, match="File does not exist") as exc:
        run_beagle(sim["panel_vcf"], tmp_path / "missing.vcf.gz", out, mem_gb=1)
    assert "missing.vcf.gz" in str(exc.value)
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------- minimac4


@needs_minimac4
def test_minimac4_imputes_all_panel_sites(sim, tmp_path):
    msav = tmp_path / "panel.msav"
    assert compress_reference_minimac4(sim["panel_vcf"], msav) > 0
    assert msav.stat().st_size > 0
    out = tmp_path / "minimac4.vcf.gz"
    assert run_minimac4(msav, sim["target_vcf"], out, threads=1, genetic_map=sim["map"]) > 0
    _assert_imputed(out, sim)
    with pysam.VariantFile(str(out)) as vf:
        assert {"GT", "DS", "GP"} <= set(vf.header.formats)


@needs_minimac4
def test_minimac4_failure_raises_with_stderr_and_leaves_nothing(sim, tmp_path):
    out = tmp_path / "out" / "minimac4.vcf.gz"
    with pytest.raises(RuntimeError, match="minimac4 failed") as exc:
        run_minimac4(tmp_path / "missing.msav", sim["target_vcf"], out)
    assert "missing.msav" in str(exc.value)
    assert list(out.parent.iterdir()) == []
    msav = tmp_path / "out" / "panel.msav"
    with pytest.raises(RuntimeError, match="minimac4"):
        compress_reference_minimac4(tmp_path / "missing.vcf.gz", msav)
    assert list(msav.parent.iterdir()) == []


@needs_minimac4
def test_minimac4_refuses_gzipped_map(sim, tmp_path):
    with pytest.raises(InputError, match="plain-text maps only"):
        run_minimac4(tmp_path / "x.msav", sim["target_vcf"], tmp_path / "o.vcf.gz",
                     genetic_map=sim["dir"] / "map.gmap.gz")


# --------------------------------------------------------------------------- genetic map


def test_convert_genetic_map_plain_with_and_without_header(tmp_path):
    for header in ("pos\tchr\tcM\n", ""):
        src = tmp_path / "in.gmap"
        src.write_text(header + "100\t20\t0.0\n200 20 0.5\n\n300\t20\t1.25\n")
        out = convert_genetic_map(src, tmp_path / "out.map", contig="chr20")
        assert out.read_text().splitlines() == ["chr20\t.\t0.0\t100", "chr20\t.\t0.5\t200", "chr20\t.\t1.25\t300"]


@pytest.mark.parametrize(
    "body, problem",
    [
        ("100\t20\t0.0\n200\t20\n", "expected 3 columns"),
        ("100\t20\t0.0\n2x0\t20\t0.1\n", "is not a number"),
        ("100\t20\t0.0\n90\t20\t0.1\n", "not after the previous"),
        ("100\t20\t0.0\n0\t20\t0.1\n", "below 1"),
        ("100\t20\t0.5\n200\t20\t0.1\n", "below the previous"),
        ("100\t20\t0.0\n200\t21\t0.1\n", "several chromosomes"),
    ],
)
def test_convert_genetic_map_rejects_malformed_line(tmp_path, body, problem):
    src = tmp_path / "bad.gmap"
    src.write_text("pos chr cM\n" + body)
    out = tmp_path / "out.map"
    with pytest.raises(InputError, match=problem) as exc:
        convert_genetic_map(src, out, contig="20")
    assert "bad.gmap" in str(exc.value) and "line 3" in str(exc.value)
    assert list(tmp_path.iterdir()) == [src]  # nothing half-written


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_MAP.is_file(), reason="../shared/data is absent")
def test_convert_real_shared_map(tmp_path):
    head = tmp_path / "head.gmap.gz"
    with gzip.open(SHARED_MAP, "rt") as fin, gzip.open(head, "wt") as fout:
        fout.writelines(line for _, line in zip(range(1001), fin))
    out = convert_genetic_map(head, tmp_path / "chr20.map", contig="20")
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert len(rows) == 1000
    assert rows[0] == ["20", ".", "0.000000", "61795"]
    assert all(r[0] == "20" and r[1] == "." for r in rows)


# --------------------------------------------------------------------------- split + AF floor


def _write_split(path, rows):
    path.write_text("sample\tpop\tsuper_pop\trole\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


def _write_h5(path, hap, pos, samples, contig="chr21"):
    n_var, n_samp = hap.shape[:2]
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["contig"] = contig
        f["variants/POS"] = np.asarray(pos, np.int64)
        f["variants/REF"] = np.array([b"A"] * n_var, "S1")
        f["variants/ALT"] = np.array([b"G"] * n_var, "S1")
        f["variants/ID"] = np.array([b"."] * n_var)
        f["variants/TYPE"] = np.full(n_var, TYPE_NAMES.index("A>G"), np.int8)
        f["variants/AF"] = hap.mean(axis=(1, 2)).astype(np.float32)
        f["variants/AF_POP"] = hap.mean(axis=(1, 2))[:, None].astype(np.float32)
        f["variants/GENO_FREQ"] = np.zeros((n_var, 3), np.float32)
        f["calldata/HAP"] = hap
        f["samples/ID"] = np.array([s.encode() for s in samples])
        f["samples/POP"] = np.zeros(n_samp, np.int16)
        f["samples/SUPER_POP"] = np.array([b"EUR"] * n_samp)
        f["populations/NAME"] = np.array([b"CEU"])
    return path


def test_af_floor_is_panel_frequency_with_hwe_genotypes(tmp_path):
    rng = np.random.default_rng(0)
    n_var, samples = 40, [f"s{i}" for i in range(12)]
    freq = np.linspace(0.0, 1.0, n_var)  # covers monomorphic, rare, common, near-fixed sites
    hap = (rng.random((n_var, len(samples), 2)) < freq[:, None, None]).astype(np.int8)
    h5 = _write_h5(tmp_path / "panel.h5", hap, np.arange(1, n_var + 1) * 100, samples)
    roles = ["reference"] * 6 + ["validation"] * 2 + ["test"] * 4
    split = _write_split(tmp_path / "split.tsv", [(s, "CEU", "EUR", r) for s, r in zip(samples, roles)])
    out = tmp_path / "af.vcf.gz"

    assert write_af_floor(h5, split, out) > 0

    p = hap[:, :8].mean(axis=(1, 2))  # panel = reference + validation, not the test samples
    with pysam.VariantFile(str(out)) as vf:
        assert list(vf.header.samples) == samples[8:]
        recs = list(vf)
    assert [r.pos for r in recs] == list(np.arange(1, n_var + 1) * 100) and recs[0].chrom == "chr21"
    for rec, pi in zip(recs, p):
        for s in samples[8:]:
            call = rec.samples[s]
            ds = call["DS"][0] if isinstance(call["DS"], tuple) else call["DS"]
            assert ds == pytest.approx(2 * pi, abs=5e-4)
            gp = np.array(call["GP"])
            np.testing.assert_allclose(gp, [(1 - pi) ** 2, 2 * pi * (1 - pi), pi**2], atol=5e-4)
            assert gp.sum() == pytest.approx(1.0, abs=2e-3)
            assert sum(call["GT"]) == int(np.argmax([(1 - pi) ** 2, 2 * pi * (1 - pi), pi**2]))
            assert call.phased


def test_af_floor_rejects_sample_missing_from_panel(tmp_path):
    hap = np.zeros((3, 2, 2), np.int8)
    h5 = _write_h5(tmp_path / "panel.h5", hap, [1, 2, 3], ["a", "b"])
    split = _write_split(tmp_path / "split.tsv", [("a", "P", "S", "reference"), ("zz", "P", "S", "test")])
    with pytest.raises(InputError, match="not in the ingested panel") as exc:
        write_af_floor(h5, split, tmp_path / "af.vcf.gz")
    assert "zz" in str(exc.value)
    assert not (tmp_path / "af.vcf.gz").exists()


@pytest.mark.parametrize(
    "text, problem, record",
    [
        ("sample\tpop\trole\na\tP\treference\n", "header is", None),
        ("sample\tpop\tsuper_pop\trole\na\tP\tS\ttraining\n", "role 'training'", "a"),
        ("sample\tpop\tsuper_pop\trole\na\tP\tS\ttest\na\tP\tS\treference\n", "more than once", "a"),
        ("", "file is empty", None),
        ("sample\tpop\tsuper_pop\trole\n\na\tP\tS\ttest\textra\n", "expected 4 tab-separated fields", "line 3"),
    ],
)
def test_read_split_validates(tmp_path, text, problem, record):
    path = tmp_path / "split.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as exc:
        read_split(path)
    assert str(path) in str(exc.value)
    if record:
        assert f"record {record}" in str(exc.value)


def test_read_split_ok(tmp_path):
    path = _write_split(tmp_path / "split.tsv", [("NA1", "CEU", "EUR", "test"), ("NA2", "TSI", "EUR", "validation")])
    df = read_split(path)
    assert list(df["sample"]) == ["NA1", "NA2"] and list(df["role"]) == ["test", "validation"]


def test_write_runtime(tmp_path):
    out = write_runtime(tmp_path / "rt" / "beagle.json", method="beagle", seconds=np.float64(1.5), threads=2)
    assert json.loads(out.read_text()) == {"method": "beagle", "seconds": 1.5, "threads": 2}
    assert [p.name for p in out.parent.iterdir()] == ["beagle.json"]


@pytest.mark.parametrize("content, problem", [
    ("truncated", "truncated or not valid gzip"),
    ("not_gzip", "truncated or not valid gzip"),
    ("binary", "genetic map is not text"),
])
def test_a_broken_genetic_map_is_named_and_nothing_is_written(tmp_path, content, problem):
    import gzip as gz

    raw = tmp_path / "map.txt.gz"
    full = gz.compress(b"pos chr cM\n" + b"".join(f"{p} 20 {p / 1e6:.4f}\n".encode() for p in range(1, 200_000, 97)))
    raw.write_bytes({"truncated": full[: len(full) // 2], "not_gzip": b"\x1f\x8b" + b"\x00" * 40,
                     "binary": gz.compress(b"\xff\xfe\x00\x01" * 64)}[content])
    with pytest.raises(InputError, match=problem) as info:
        convert_genetic_map(raw, tmp_path / "out" / "map.plink", contig="20")
    assert str(raw) in str(info.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
