"""Tests for omicslm.impute.vcf_records.iter_vcf_chunks, the chunk reader under vcf_to_hdf5."""

from __future__ import annotations

import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.impute.vcf_records import SKIP_REASONS, iter_vcf_chunks, read_vcf_samples
from tests.impute.test_ingest import ENGINES, EXAMPLE, SAMPLES, make_vcf

# EXAMPLE (kept at min_maf 0.1: 100, 200) with a rare site, an unphased site and a trailing indel
RECORDS = [
    *EXAMPLE[:2],
    (250, "C", "G", ["0|0", "0|0", "0|0"]),  # monomorphic
    *EXAMPLE[2:4],
    (700, "T", "A", ["0|1", "0/1", "1|1"]),  # unphased
    (800, "G", "C", ["1|1", "0|1", "0|0"]),
    (900, "A", "AT", ["0|1", "0|0", "0|0"]),  # indel after the last kept site
]


def read(vcf, **kw):
    return list(iter_vcf_chunks(vcf, **{"min_maf": 0.1, "on_unphased": "drop_site", **kw}))


def test_read_vcf_samples(tmp_path):
    assert read_vcf_samples(make_vcf(tmp_path, RECORDS)) == SAMPLES


@pytest.mark.parametrize("chunk_length", [1, 2, 1000])
def test_engines_agree(tmp_path, chunk_length):
    vcf = make_vcf(tmp_path, RECORDS)
    text, cy = (read(vcf, engine=e, chunk_length=chunk_length) for e in ENGINES)
    assert len(text) == len(cy)
    for a, b in zip(text, cy):
        assert a.contig == b.contig == "20"
        assert a.n_records == b.n_records and a.skipped == b.skipped
        for name in ("pos", "id", "ref", "alt", "gt", "ac"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name


@pytest.mark.parametrize("engine", ENGINES)
def test_values_shapes_and_counts(tmp_path, engine):
    chunks = read(make_vcf(tmp_path, RECORDS), engine=engine, chunk_length=1)
    for ch in chunks:
        n = len(ch.pos)
        assert ch.pos.dtype == np.int64 and ch.ac.dtype == np.int64 and ch.gt.dtype == np.int8
        assert ch.gt.shape == (n, 3, 2) and ch.id.shape == ch.ref.shape == ch.alt.shape == (n,)
        assert list(ch.skipped) == list(SKIP_REASONS)
        assert ch.n_records == n + sum(ch.skipped.values())
    # the indel after the last kept site (a full chunk) comes in a chunk of its own
    assert len(chunks[-1].pos) == 0 and chunks[-1].n_records == chunks[-1].skipped["indel_or_other"] == 1
    pos = np.concatenate([c.pos for c in chunks])
    np.testing.assert_array_equal(pos, [100, 200, 800])
    assert np.concatenate([c.ref for c in chunks]).tolist() == ["A", "G", "G"]
    assert np.concatenate([c.id for c in chunks]).tolist() == ["rs100", "rs200", "rs800"]
    np.testing.assert_array_equal(np.concatenate([c.ac for c in chunks]), [3, 1, 3])
    gt = np.concatenate([c.gt for c in chunks])
    np.testing.assert_array_equal(gt, [[[0, 1], [1, 1], [0, 0]], [[1, 0], [0, 0], [0, 0]], [[1, 1], [0, 1], [0, 0]]])
    total = {r: sum(c.skipped[r] for c in chunks) for r in SKIP_REASONS}
    assert total == {"multiallelic": 1, "indel_or_other": 2, "missing": 0, "unphased": 1, "below_maf": 1}
    assert sum(c.n_records for c in chunks) == len(RECORDS)


@pytest.mark.parametrize("engine", ENGINES)
def test_sample_subset(tmp_path, engine):
    """Columns follow the VCF's order whatever the order asked; AF (and MAF) are over the subset."""
    chunks = read(make_vcf(tmp_path, RECORDS), engine=engine, samples=["C", "A"], min_maf=0.2)
    ch = chunks[0]
    np.testing.assert_array_equal(ch.pos, [100, 200, 700, 800])  # 700 is unphased in B only, not read
    np.testing.assert_array_equal(ch.gt, [[[0, 1], [0, 0]], [[1, 0], [0, 0]], [[0, 1], [1, 1]], [[1, 1], [0, 0]]])
    np.testing.assert_array_equal(ch.ac, [1, 1, 3, 2])


@pytest.mark.parametrize("engine", ENGINES)
def test_bad_record_names_file_and_record(tmp_path, engine):
    vcf = make_vcf(tmp_path, RECORDS)
    with pytest.raises(InputError) as e:
        list(iter_vcf_chunks(vcf, engine=engine))
    assert str(vcf) in str(e.value) and e.value.record == "20:700"
    assert "unphased genotype 0/1 in sample B" in str(e.value)


def test_checked_when_called(tmp_path):
    """File, samples and options are checked at the call, before any record is read."""
    vcf = make_vcf(tmp_path, RECORDS)
    with pytest.raises(InputError, match="1 requested sample"):
        iter_vcf_chunks(vcf, samples=["A", "Z"])
    with pytest.raises(InputError, match="VCF file not found"):
        iter_vcf_chunks(tmp_path / "nope.vcf.gz")
    with pytest.raises(ValueError, match="chunk_length"):
        iter_vcf_chunks(vcf, chunk_length=0)
