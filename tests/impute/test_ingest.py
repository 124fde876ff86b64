"""Tests for omicslm.impute.ingest: VCF -> HDF5 panel, population panel file (bad input: test_ingest_errors.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest

from omicslm.errors import InputError
from omicslm.impute import layout
from omicslm.impute.ingest import read_population_panel, vcf_to_hdf5

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_VCF = SHARED / "impute" / "1kg_phase3_chr20_eur" / "reference.vcf.gz"
REAL_PANEL = SHARED / "impute" / "integrated_call_samples_v3.20130502.ALL.panel"

HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=20>\n##contig=<ID=21>\n"
    '##INFO=<ID=SVTYPE,Number=1,Type=String,Description="SV type">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">\n'
)
SAMPLES = ["A", "B", "C"]
PANEL_ROWS = [("A", "GBR", "EUR", "male"), ("B", "GBR", "EUR", "female"), ("C", "YRI", "AFR", "male")]

# pos, ref, alt, genotypes of A, B, C; see test_values for the hand-computed results
EXAMPLE = [
    (100, "A", "C", ["0|1", "1|1", "0|0"]),
    (200, "G", "T", ["1|0", "0|0", "0|0"]),
    (300, "A", "AT", ["0|1", "0|0", "0|0"]),  # indel
    (400, "C", "A,G", ["0|1", "2|0", "0|0"]),  # multiallelic
    (500, "T", "C", ["0|0", "0|0", "0|0"]),  # monomorphic: below MAF
    (600, "A", "<DEL>", ["0|1", "0|0", "0|0"]),  # symbolic allele
]

ENGINES = ["text", "cyvcf2"]


def write_vcf_text(path: Path, records, samples=SAMPLES, header=HEADER, chrom="20", fmt="GT") -> Path:
    lines = [header + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)]
    for rec in records:
        pos, ref, alt, gts = rec[:4]
        c = rec[4] if len(rec) > 4 else chrom
        lines.append("\t".join([c, str(pos), f"rs{pos}", ref, alt, ".", "PASS", ".", fmt, *gts]))
    path.write_text("\n".join(lines) + "\n")
    return path


def make_vcf(tmp_path: Path, records, name="in.vcf.gz", **kw) -> Path:
    """Write VCF text and bgzip it (no index: ingest streams)."""
    plain = write_vcf_text(tmp_path / "plain.vcf", records, **kw)
    gz = tmp_path / name
    pysam.tabix_compress(str(plain), str(gz), force=True)
    plain.unlink()
    return gz


def make_panel(tmp_path: Path, rows=PANEL_ROWS, name="samples.panel") -> Path:
    p = tmp_path / name
    p.write_text("sample\tpop\tsuper_pop\tgender\n" + "".join("\t".join(r) + "\n" for r in rows))
    return p


def ingest(tmp_path, records, engine="text", panel_rows=PANEL_ROWS, **kw):
    vcf = make_vcf(tmp_path, records)
    out = tmp_path / "panel.h5"
    stats = vcf_to_hdf5(vcf, make_panel(tmp_path, panel_rows), out, engine=engine, **kw)
    return vcf, out, stats


def assert_no_output(tmp_path: Path) -> None:
    """An error must leave neither the HDF5 nor a temporary file beside it."""
    assert not (tmp_path / "panel.h5").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".panel.h5")]


def expect_error(tmp_path, records, *fragments, engine="text", **kw):
    vcf = make_vcf(tmp_path, records, **kw.pop("vcf_kw", {}))
    with pytest.raises(InputError) as e:
        vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5", engine=engine, **kw)
    msg = str(e.value)
    assert str(vcf) in msg
    for frag in fragments:
        assert frag in msg, msg
    assert_no_output(tmp_path)
    return e.value


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("engine", ENGINES)
def test_values(tmp_path, engine):
    vcf, out, stats = ingest(tmp_path, EXAMPLE, engine=engine, min_maf=0.1)
    assert stats["n_records"] == 6 and stats["n_kept"] == 2 and stats["n_samples"] == 3
    assert stats["skipped"] == {
        "multiallelic": 1,
        "indel_or_other": 2,
        "missing": 0,
        "unphased": 0,
        "below_maf": 1,
        "shared_position": 0,
    }
    p = layout.read_panel(out)
    assert p.contig == "20"
    np.testing.assert_array_equal(p.pos, [100, 200])
    assert list(p.ref) == ["A", "G"] and list(p.alt) == ["C", "T"]
    assert [layout.TYPE_NAMES[t] for t in p.vtype] == ["A>C", "G>T"]
    # site 100: A 0|1, B 1|1, C 0|0; site 200: A 1|0, B 0|0, C 0|0
    np.testing.assert_array_equal(p.hap, [[[0, 1], [1, 1], [0, 0]], [[1, 0], [0, 0], [0, 0]]])
    assert p.hap.dtype == np.int8
    np.testing.assert_allclose(p.af, [3 / 6, 1 / 6])
    assert list(p.populations) == ["GBR", "YRI"]
    np.testing.assert_allclose(p.af_pop, [[3 / 4, 0], [1 / 4, 0]])
    np.testing.assert_allclose(p.geno_freq, [[1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 3, 0]])
    assert list(p.samples) == SAMPLES
    np.testing.assert_array_equal(p.pop, [0, 0, 1])
    assert list(p.super_pop) == ["EUR", "EUR", "AFR"]
    with h5py.File(out) as f:
        assert f.attrs["format_version"] == layout.FORMAT_VERSION
        assert f.attrs["source_vcf"] == str(vcf)
        assert f.attrs["min_maf"] == pytest.approx(0.1)
        assert list(f.attrs["type_names"]) == layout.TYPE_NAMES
        assert f.attrs["n_skipped_multiallelic"] == 1
        assert f.attrs["n_skipped_indel_or_other"] == 2
        assert f.attrs["n_skipped_below_maf"] == 1
        assert [x.decode() for x in f["variants/ID"][:]] == ["rs100", "rs200"]
        assert f["calldata/HAP"].compression is not None and f["calldata/HAP"].chunks is not None


@pytest.mark.parametrize("engine", ENGINES)
def test_indels(tmp_path, engine):
    """indels=True keeps the biallelic indel with its allele strings and class; symbolic and multiallelic stay out."""
    records = [*EXAMPLE[:2], EXAMPLE[2], (350, "TGA", "T", ["1|1", "0|0", "0|1"]),
               (360, "AC", "GT", ["0|0", "1|0", "0|0"]), *EXAMPLE[3:]]
    vcf, out, stats = ingest(tmp_path, records, engine=engine, min_maf=0.1, indels=True)
    assert stats["n_kept"] == 5 and stats["skipped"]["indel_or_other"] == 1  # <DEL> only
    p = layout.read_panel(out)
    np.testing.assert_array_equal(p.pos, [100, 200, 300, 350, 360])
    assert list(p.ref) == ["A", "G", "A", "TGA", "AC"] and list(p.alt) == ["C", "T", "AT", "T", "GT"]
    assert [layout.TYPE_NAMES[t] for t in p.vtype] == ["A>C", "G>T", "INS", "DEL", "MNP"]
    assert list(layout.is_snp_type(p.vtype)) == [True, True, False, False, False]
    np.testing.assert_array_equal(p.hap[3], [[1, 1], [0, 0], [0, 1]])
    np.testing.assert_allclose(p.af[2:], [1 / 6, 3 / 6, 1 / 6])
    with h5py.File(out) as f:
        assert bool(f.attrs["indels"]) and f.attrs["format_version"] == 2


@pytest.mark.parametrize("chunk_size", [1, 2, 2000])
@pytest.mark.parametrize("engine", ENGINES)
def test_one_site_per_position(tmp_path, engine, chunk_size):
    """A SNP and indels at one position keep the SNP (whichever comes first), two indels the first: one site per
    position, the rest counted as shared_position; the haplotypes are those of the kept record."""
    g1, g2, g3 = ["0|1", "0|0", "0|0"], ["1|1", "0|0", "0|0"], ["1|0", "1|0", "0|0"]
    records = [(100, "A", "AT", g1), (100, "A", "C", g2),  # indel first: the SNP is kept
               (200, "G", "T", g3), (200, "GA", "G", g1),  # SNP first
               (300, "C", "CA", g2), (300, "C", "CAA", g1),  # two indels: the first
               (400, "T", "G", g1)]
    _, out, stats = ingest(tmp_path, records, engine=engine, indels=True, chunk_size=chunk_size)
    p = layout.read_panel(out)
    assert stats["n_kept"] == 4 and stats["skipped"]["shared_position"] == 3
    np.testing.assert_array_equal(p.pos, [100, 200, 300, 400])
    if chunk_size == 1:  # a chunk boundary between two records of one position: the first, already kept, stays
        assert list(p.alt) == ["AT", "T", "CA", "G"]
        np.testing.assert_array_equal(p.hap[:, 0], [[0, 1], [1, 0], [1, 1], [0, 1]])
    else:
        assert list(p.alt) == ["C", "T", "CA", "G"]
        np.testing.assert_array_equal(p.hap[:, 0], [[1, 1], [1, 0], [1, 1], [0, 1]])


@pytest.mark.parametrize("engine", ENGINES)
def test_maf_filter_and_chunks(tmp_path, engine):
    # 10 samples = 20 haplotypes; site i carries i alt alleles (MAF = i/20, folded)
    samples = [f"S{i}" for i in range(10)]
    records = []
    for i, pos in enumerate(range(1000, 1021)):
        alleles = [1] * i + [0] * (20 - i)
        records.append((pos, "C", "T", [f"{alleles[2 * j]}|{alleles[2 * j + 1]}" for j in range(10)]))
    vcf = make_vcf(tmp_path, records, samples=samples)
    # populations interleaved (P2, P1, P2, ...): AF_POP must group samples, not slice them
    pops = ["P2" if k % 2 == 0 else "P1" for k in range(10)]
    panel = make_panel(tmp_path, [(s, pop, "X", "male") for s, pop in zip(samples, pops)])
    stats = vcf_to_hdf5(vcf, panel, tmp_path / "panel.h5", min_maf=0.15, chunk_size=4, engine=engine)
    p = layout.read_panel(tmp_path / "panel.h5")
    # kept: minor count >= 3 of 20, i.e. i = 3..17
    np.testing.assert_array_equal(p.pos, np.arange(1003, 1018))
    assert stats["skipped"]["below_maf"] == 6
    np.testing.assert_allclose(p.af, np.arange(3, 18) / 20)
    assert p.hap.sum(axis=(1, 2)).tolist() == list(range(3, 18))
    assert list(p.populations) == ["P1", "P2"]
    np.testing.assert_array_equal(p.pop, [1 if k % 2 == 0 else 0 for k in range(10)])
    in_p1 = np.array(pops) == "P1"
    expected = np.stack([p.hap[:, in_p1].mean(axis=(1, 2)), p.hap[:, ~in_p1].mean(axis=(1, 2))], axis=1)
    np.testing.assert_allclose(p.af_pop, expected, rtol=1e-6)
    assert p.af_pop[:, 0].sum() != p.af_pop[:, 1].sum()  # the two populations really differ


@pytest.mark.parametrize("compression, opts", [("gzip", 1), ("gzip", None), ("lzf", None), (None, None)])
def test_hap_chunked_writes(tmp_path, monkeypatch, compression, opts):
    """Threaded direct-chunk gzip writes (many HDF5 chunks, a partial last one) read back exactly."""
    import omicslm.impute.ingest as ingest_mod

    monkeypatch.setattr(ingest_mod, "_HAP_CHUNK_BYTES", 4 * 2 * 3)  # 4 sites per HDF5 chunk
    rng = np.random.default_rng(3)
    hap = rng.integers(0, 2, size=(23, 3, 2))
    hap[:, 0] = [0, 1]  # every site polymorphic, so all 23 pass the MAF filter
    records = [(10 * (i + 1), "C", "G", [f"{a}|{b}" for a, b in hap[i]]) for i in range(23)]
    vcf = make_vcf(tmp_path, records)
    out = tmp_path / "panel.h5"
    vcf_to_hdf5(vcf, make_panel(tmp_path), out, chunk_size=5, compression=compression, compression_opts=opts)
    with h5py.File(out) as f:
        assert f["calldata/HAP"].chunks == (4, 3, 2)
        assert f["calldata/HAP"].compression == compression
        np.testing.assert_array_equal(f["calldata/HAP"][:], hap)


def test_engines_agree_with_sample_subset(tmp_path):
    """VCF samples missing from the panel are ignored; AF is over the kept samples."""
    records = [(100, "A", "G", ["1|1", "0|1", "1|0"]), (200, "C", "T", ["1|1", "0|0", "0|0"])]
    vcf = make_vcf(tmp_path, records)
    panel = make_panel(tmp_path, PANEL_ROWS[1:])  # B, C only
    res = {}
    for engine in ENGINES:
        vcf_to_hdf5(vcf, panel, tmp_path / f"{engine}.h5", engine=engine, min_maf=0.2)
        res[engine] = layout.read_panel(tmp_path / f"{engine}.h5")
    for p in res.values():
        assert list(p.samples) == ["B", "C"]
        np.testing.assert_array_equal(p.pos, [100])  # site 200 is monomorphic in B, C
        np.testing.assert_array_equal(p.hap, [[[0, 1], [1, 0]]])
        np.testing.assert_allclose(p.af, [0.5])


def test_plain_vcf_input(tmp_path):
    vcf = write_vcf_text(tmp_path / "in.vcf", EXAMPLE)
    stats = vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5", min_maf=0.1)
    assert stats["n_kept"] == 2


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
def test_bcf_input(tmp_path):
    """BCF goes through the cyvcf2 engine ("auto") and gives the same panel."""
    vcf = make_vcf(tmp_path, EXAMPLE)
    bcf = tmp_path / "in.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)], check=True)
    vcf_to_hdf5(bcf, make_panel(tmp_path), tmp_path / "bcf.h5", min_maf=0.1)
    vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "vcf.h5", min_maf=0.1)
    a, b = layout.read_panel(tmp_path / "bcf.h5"), layout.read_panel(tmp_path / "vcf.h5")
    np.testing.assert_array_equal(a.pos, b.pos)
    np.testing.assert_array_equal(a.hap, b.hap)


def test_extra_format_fields(tmp_path):
    """GT:DS records take the exact (slow) parser; values must match."""
    records = [(100, "A", "C", ["0|1:1.0", "1|1:2.0", "0|0:0"])]
    vcf = make_vcf(tmp_path, records, fmt="GT:DS")
    vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5", min_maf=0.1)
    np.testing.assert_array_equal(layout.read_panel(tmp_path / "panel.h5").hap, [[[0, 1], [1, 1], [0, 0]]])


# --------------------------------------------------------------------------- samples and panel file


def test_panel_sample_missing_from_vcf(tmp_path):
    rows = PANEL_ROWS + [("D", "YRI", "AFR", "female")]
    vcf = make_vcf(tmp_path, EXAMPLE)
    with pytest.raises(InputError, match=r"1 sample\(s\) of panel file .* not in the VCF: D") as e:
        vcf_to_hdf5(vcf, make_panel(tmp_path, rows), tmp_path / "panel.h5")
    assert str(vcf) in str(e.value)
    assert_no_output(tmp_path)
    stats = vcf_to_hdf5(vcf, make_panel(tmp_path, rows), tmp_path / "panel.h5", panel_subset=True, min_maf=0.1)
    assert stats["n_samples"] == 3


def test_no_vcf_sample_in_panel(tmp_path):
    vcf = make_vcf(tmp_path, EXAMPLE)
    with pytest.raises(InputError, match="none of the VCF's 3 samples"):
        vcf_to_hdf5(vcf, make_panel(tmp_path, [("Z", "P", "S", "male")]), tmp_path / "panel.h5", panel_subset=True)


def test_read_population_panel(tmp_path):
    p = tmp_path / "x.panel"
    # 1000 Genomes style: tab separated, trailing empty columns in the header
    p.write_text("sample\tpop\tsuper_pop\tgender\t\t\nHG1\tGBR\tEUR\tmale\nHG2 YRI  AFR female\n")
    df = read_population_panel(p)
    assert list(df.columns) == ["sample", "pop", "super_pop", "gender"]
    assert df.values.tolist() == [["HG1", "GBR", "EUR", "male"], ["HG2", "YRI", "AFR", "female"]]


def test_read_population_panel_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_population_panel(tmp_path / "nope.panel")
    p = tmp_path / "x.panel"
    p.write_text("sample\tgender\nHG1\tmale\n")
    with pytest.raises(InputError, match="lacks column\\(s\\) pop, super_pop") as e:
        read_population_panel(p)
    assert str(p) in str(e.value)
    p.write_text("sample\tpop\tsuper_pop\tgender\nHG1\tGBR\tEUR\tmale\nHG1\tGBR\tEUR\tmale\n")
    with pytest.raises(InputError, match="duplicate sample id\\(s\\) in population panel: HG1"):
        read_population_panel(p)


@pytest.mark.skipif(not REAL_PANEL.exists(), reason="../shared/data not present (a user's clone has none)")
@pytest.mark.shared_data
def test_read_real_population_panel():
    df = read_population_panel(REAL_PANEL)
    assert len(df) == 2535
    assert df.iloc[0].tolist() == ["HG00096", "GBR", "EUR", "male"]
    assert set(df["super_pop"]) == {"AFR", "AMR", "EAS", "EUR", "SAS"}


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present (a user's clone has none)")
@pytest.mark.shared_data
def test_real_1kg_chr20(tmp_path):
    import cyvcf2

    min_maf = 0.01
    stats = vcf_to_hdf5(REAL_VCF, REAL_PANEL, tmp_path / "panel.h5", min_maf=min_maf, panel_subset=True)
    # independent count: a plain cyvcf2 loop with integer minor-allele counts
    n_biallelic, n_snp, n_pass, n = 0, 0, 0, None
    for v in cyvcf2.VCF(str(REAL_VCF)):
        if len(v.ALT) != 1:
            continue
        n_biallelic += 1
        if not (len(v.REF) == 1 and len(v.ALT[0]) == 1):
            continue
        n_snp += 1
        n = n or 2 * len(v.gt_types)
        ac = int(v.genotype.array()[:, :2].sum())
        n_pass += min(ac, n - ac) >= min_maf * n
    assert stats["n_samples"] == 300
    assert stats["n_records"] == n_biallelic == 24990
    assert stats["skipped"]["indel_or_other"] == n_biallelic - n_snp
    assert stats["n_kept"] == n_pass
    p = layout.read_panel(tmp_path / "panel.h5", haplotypes=False)
    assert p.contig == "20" and len(p.pos) == n_pass and (np.diff(p.pos) > 0).all()
    assert list(p.populations) == ["CEU", "FIN", "GBR", "IBS"]
    assert (np.minimum(p.af, 1 - p.af) >= min_maf - 1e-6).all()
