"""Tests for omicslm.impute.ingest: VCF -> HDF5 panel, population panel file, windows."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pysam
import pytest

from omicslm.errors import InputError
from omicslm.impute import layout
from omicslm.impute.ingest import read_population_panel, vcf_to_hdf5, write_windows

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


# --------------------------------------------------------------------------- genotype errors


@pytest.mark.parametrize("engine", ENGINES)
def test_unphased_error(tmp_path, engine):
    records = [EXAMPLE[0], (200, "G", "T", ["1|0", "0/1", "0|0"])]
    e = expect_error(tmp_path, records, "20:200", "unphased genotype 0/1 in sample B", engine=engine)
    assert e.record == "20:200"


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_error(tmp_path, engine):
    records = [EXAMPLE[0], (200, "G", "T", ["1|0", "0|0", ".|."])]
    expect_error(tmp_path, records, "20:200", "missing genotype .|. in sample C", engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_drop_site(tmp_path, engine):
    records = [
        EXAMPLE[0],
        (200, "G", "T", ["1|0", "0/1", "0|0"]),
        (300, "G", "T", ["1|0", "0|1", ".|0"]),
        (400, "G", "A", ["1|0", "0|1", "0|0"]),
    ]
    _, out, stats = ingest(tmp_path, records, engine=engine, on_unphased="drop_site")
    assert stats["skipped"]["unphased"] == 1 and stats["skipped"]["missing"] == 1
    np.testing.assert_array_equal(layout.read_panel(out, haplotypes=False).pos, [100, 400])
    with h5py.File(out) as f:
        assert f.attrs["n_skipped_unphased"] == 1 and f.attrs["n_skipped_missing"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_haploid_error(tmp_path, engine):
    records = [EXAMPLE[0], (200, "G", "T", ["1", "0", "0"])]
    expect_error(tmp_path, records, "20:200", "must be diploid", engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_allele_out_of_range(tmp_path, engine):
    records = [(200, "G", "T", ["1|2", "0|0", "0|0"])]
    expect_error(tmp_path, records, "20:200", "allele 2 in sample A", engine=engine)


def test_unparseable_genotype(tmp_path):
    records = [(200, "G", "T", ["1|x", "0|0", "0|0"])]
    expect_error(tmp_path, records, "20:200", "cannot parse genotype '1|x' in sample A")


# --------------------------------------------------------------------------- record order


@pytest.mark.parametrize("engine", ENGINES)
def test_unsorted(tmp_path, engine):
    records = [(1500, "A", "C", ["0|1", "1|1", "0|0"]), (1200, "A", "C", ["0|1", "1|1", "0|0"])]
    e = expect_error(tmp_path, records, "position 1200 after 1500: VCF is not sorted", engine=engine)
    assert e.record == "20:1200"


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_position(tmp_path, engine):
    records = [EXAMPLE[0], (100, "A", "G", ["0|1", "1|1", "0|0"])]
    expect_error(tmp_path, records, "20:100", "duplicate position 100", engine=engine)


def test_same_position_indel_and_snp_is_fine(tmp_path):
    records = [(100, "A", "AT", ["0|1", "0|0", "0|0"]), EXAMPLE[0]]
    _, out, stats = ingest(tmp_path, records)
    assert stats["n_kept"] == 1 and stats["skipped"]["indel_or_other"] == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_second_contig(tmp_path, engine):
    records = [EXAMPLE[0], (50, "A", "C", ["0|1", "1|1", "0|0"], "21")]
    expect_error(tmp_path, records, "21:50", "second contig 21 after 20", engine=engine)


# --------------------------------------------------------------------------- bad files


def test_no_gt_in_header(tmp_path):
    header = HEADER.replace('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n', "")
    records = [(100, "A", "C", ["0.5", "1", "0"])]
    expect_error(tmp_path, records, "no GT", vcf_kw={"header": header, "fmt": "DS"})


@pytest.mark.parametrize("engine", ENGINES)
def test_no_gt_in_record(tmp_path, engine):
    records = [(100, "A", "C", ["0.5", "1", "0"])]
    expect_error(tmp_path, records, "20:100", "no GT", engine=engine, vcf_kw={"fmt": "DS"})


def test_truncated_bgzip(tmp_path):
    vcf = make_vcf(tmp_path, EXAMPLE)
    data = vcf.read_bytes()
    vcf.write_bytes(data[: len(data) - 40])
    with pytest.raises(InputError, match="truncated") as e:
        vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5")
    assert str(vcf) in str(e.value)
    assert_no_output(tmp_path)


def test_corrupt_block(tmp_path):
    """A damaged block in the middle (EOF marker intact) is caught while streaming."""
    rng = np.random.default_rng(0)
    samples = [f"S{i}" for i in range(200)]
    records = [
        (100 + i, "A", "G", [f"{a}|{b}" for a, b in rng.integers(0, 2, size=(200, 2))]) for i in range(400)
    ]
    vcf = make_vcf(tmp_path, records, samples=samples)
    data = bytearray(vcf.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 200] = bytes(b ^ 0x55 for b in data[mid : mid + 200])
    vcf.write_bytes(bytes(data))
    panel = make_panel(tmp_path, [(s, "P", "S", "male") for s in samples])
    for engine in ENGINES:
        with pytest.raises(InputError, match="corrupt|cannot parse") as e:
            vcf_to_hdf5(vcf, panel, tmp_path / "panel.h5", engine=engine)
        assert str(vcf) in str(e.value)
        assert_no_output(tmp_path)


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("in.vcf.gz", b"##fileformat=VCFv4.2\nplain text renamed\n", "not gzip"),
        ("in.vcf.gz", bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)), "not gzip"),
        ("in.vcf", bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)), "not a VCF"),
        ("in.vcf", b"", "empty"),
    ],
)
def test_not_a_vcf(tmp_path, name, content, problem):
    vcf = tmp_path / name
    vcf.write_bytes(content)
    with pytest.raises(InputError, match=problem) as e:
        vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5")
    assert str(vcf) in str(e.value)
    assert_no_output(tmp_path)


@pytest.mark.parametrize(
    "line, fragments",
    [
        ("20\t300\t.\tA\tC\t.\t.\t.\tGT\t0|1\t0|0", ["20:300", "record has 2 sample columns but the header names 3"]),
        ("20\t300\t.\tA\tC\t.\t.", ["20:300", "record has 7 tab-separated columns, expected 12"]),
        ("20\tx300\t.\tA\tC\t.\t.\t.\tGT\t0|1\t0|0\t0|0", ["POS 'x300' is not an integer"]),
    ],
)
def test_malformed_line(tmp_path, line, fragments):
    vcf = write_vcf_text(tmp_path / "in.vcf", EXAMPLE[:2])
    vcf.write_text(vcf.read_text() + line + "\n")
    with pytest.raises(InputError) as e:
        vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5")
    for frag in [str(vcf), *fragments]:
        assert frag in str(e.value)
    assert_no_output(tmp_path)


def test_plain_gzip_rejected(tmp_path):
    import gzip

    vcf = tmp_path / "in.vcf.gz"
    vcf.write_bytes(gzip.compress(write_vcf_text(tmp_path / "x.vcf", EXAMPLE).read_bytes()))
    with pytest.raises(InputError, match="not bgzip"):
        vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5")


def test_missing_vcf(tmp_path):
    with pytest.raises(InputError, match="VCF file not found"):
        vcf_to_hdf5(tmp_path / "nope.vcf.gz", make_panel(tmp_path), tmp_path / "panel.h5")


@pytest.mark.parametrize("engine", ENGINES)
def test_header_only(tmp_path, engine):
    expect_error(tmp_path, [], "no records", engine=engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_nothing_passes_maf(tmp_path, engine):
    records = [EXAMPLE[2], (500, "T", "C", ["0|0", "0|0", "0|0"])]
    expect_error(tmp_path, records, "no biallelic SNP with MAF >= 0.01 among 2 records", engine=engine)


def test_bad_options(tmp_path):
    vcf, panel = make_vcf(tmp_path, EXAMPLE), make_panel(tmp_path)
    with pytest.raises(ValueError, match="on_unphased"):
        vcf_to_hdf5(vcf, panel, tmp_path / "panel.h5", on_unphased="ignore")
    with pytest.raises(ValueError, match="min_maf"):
        vcf_to_hdf5(vcf, panel, tmp_path / "panel.h5", min_maf=0.7)


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


# --------------------------------------------------------------------------- windows


def make_sites_h5(path: Path, n: int) -> Path:
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = layout.FORMAT_VERSION
        f["variants/POS"] = np.arange(1, n + 1, dtype=np.int64) * 10
    return path


@pytest.mark.parametrize(
    "n, sites, overlap, starts",
    [
        (10, 4, 1, [0, 3, 6]),  # step 3 ends exactly at the last site
        (11, 4, 1, [0, 3, 6, 7]),  # last window moved back to end at site 11
        (10, 4, 2, [0, 2, 4, 6]),
        (10, 4, 0, [0, 4, 6]),
        (3, 4, 1, [0]),  # fewer sites than a window: one window with all
        (4, 4, 3, [0]),
    ],
)
def test_write_windows(tmp_path, n, sites, overlap, starts):
    h5 = make_sites_h5(tmp_path / "p.h5", n)
    df = write_windows(h5, tmp_path / "w.tsv", sites=sites, overlap=overlap)
    assert df["start_idx"].tolist() == starts
    assert df["window"].tolist() == list(range(len(starts)))
    assert (df["end_idx"] - df["start_idx"] == df["n_sites"]).all()
    assert (df["n_sites"] == min(n, sites)).all()
    covered = np.zeros(n, dtype=bool)
    for s, e in zip(df["start_idx"], df["end_idx"]):
        covered[s:e] = True
    assert covered.all() and df["end_idx"].iloc[-1] == n
    # consecutive windows share at least `overlap` sites (the moved last one may share more)
    shared = df["end_idx"].to_numpy()[:-1] - df["start_idx"].to_numpy()[1:]
    assert (shared >= overlap).all()
    if len(df) > 2:
        assert (shared[:-1] == overlap).all()
    assert df["start_pos"].tolist() == [10 * (s + 1) for s in starts]
    assert df["end_pos"].tolist() == [10 * e for e in df["end_idx"]]
    back = pd.read_csv(tmp_path / "w.tsv", sep="\t")
    assert list(back.columns) == ["window", "start_idx", "end_idx", "start_pos", "end_pos", "n_sites"]
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


@pytest.mark.parametrize("sites, overlap", [(4, 4), (4, 5), (4, -1), (0, 0)])
def test_write_windows_bad_args(tmp_path, sites, overlap):
    h5 = make_sites_h5(tmp_path / "p.h5", 10)
    with pytest.raises(ValueError, match="overlap"):
        write_windows(h5, tmp_path / "w.tsv", sites=sites, overlap=overlap)
    assert not (tmp_path / "w.tsv").exists()


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
