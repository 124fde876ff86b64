"""Tests for omicslm.impute.ingest on bad input: genotype errors, record order, bad files.

Each error names the file and the record, and leaves no output behind (``expect_error``).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.impute import layout
from omicslm.impute.ingest import vcf_to_hdf5
from tests.impute.test_ingest import (ENGINES, EXAMPLE, HEADER, assert_no_output, expect_error, ingest, make_panel,
                                      make_vcf, write_vcf_text)


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
    expect_error(tmp_path, records, "no biallelic site with MAF >= 0.01 among 2 records", engine=engine)


def test_bad_options(tmp_path):
    vcf, panel = make_vcf(tmp_path, EXAMPLE), make_panel(tmp_path)
    with pytest.raises(ValueError, match="on_unphased"):
        vcf_to_hdf5(vcf, panel, tmp_path / "panel.h5", on_unphased="ignore")
    with pytest.raises(ValueError, match="min_maf"):
        vcf_to_hdf5(vcf, panel, tmp_path / "panel.h5", min_maf=0.7)


def test_duplicate_sample_names_in_the_vcf_are_named(tmp_path):
    from tests.impute.test_ingest import write_vcf_text

    vcf = write_vcf_text(tmp_path / "dup.vcf", EXAMPLE[:2], samples=["S1", "S2", "S1"])
    with pytest.raises(InputError, match=r"record #CHROM: duplicate sample name\(s\) in the VCF header: S1"):
        vcf_to_hdf5(vcf, make_panel(tmp_path), tmp_path / "panel.h5")
    assert_no_output(tmp_path)


def test_a_panel_file_that_is_not_utf8_is_named(tmp_path):
    panel = tmp_path / "utf16.panel"
    panel.write_bytes("sample\tpop\tsuper_pop\nS1\tCEU\tEUR\n".encode("utf-16"))
    with pytest.raises(InputError, match="utf16.panel: population panel file is not UTF-8 text"):
        vcf_to_hdf5(write_vcf_text_example(tmp_path), panel, tmp_path / "panel.h5")
    assert_no_output(tmp_path)


def write_vcf_text_example(tmp_path):
    from tests.impute.test_ingest import write_vcf_text

    return write_vcf_text(tmp_path / "ok.vcf", EXAMPLE[:2])
