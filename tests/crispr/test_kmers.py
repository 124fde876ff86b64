import filecmp
from pathlib import Path

import pytest

from omicslm.crispr.fasta import read_fasta, revcomp
from omicslm.crispr.kmers import extract_mers, iter_sites
from omicslm.errors import InputError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REF = SHARED / "crispr" / "crispron_get30mers_test"


@pytest.mark.skipif(not REF.is_dir(), reason=f"CRISPRon reference test data not found at {REF} (../shared absent)")
def test_matches_crispron_get30mers_byte_for_byte(tmp_path):
    n = extract_mers(REF / "seq.fa", tmp_path / "23mers.fa", tmp_path / "30mers.fa")
    assert n == 341
    assert filecmp.cmp(tmp_path / "23mers.fa", REF / "23mers.fa", shallow=False)
    assert filecmp.cmp(tmp_path / "30mers.fa", REF / "30mers.fa", shallow=False)


def test_sites_on_both_strands_with_crispron_ids():
    spacer = "ACGTACGTACGTACGTACGA"
    # plus-strand site: 4 nt + spacer + TGG + 3 nt, inside a longer sequence
    plus = "TTTT" + spacer + "TGG" + "CAT"
    seq = "A" + plus + "A"
    sites = {s.id: s for s in iter_sites("s", seq)}
    assert sites["s_p_6"].mer30 == plus and sites["s_p_6"].mer23 == spacer + "TGG"
    # the same site written on the minus strand: pos is the leftmost forward base of the 23mer footprint
    rc = revcomp(seq)
    msites = {s.id: s for s in iter_sites("r", rc)}
    m = msites[f"r_m_{len(rc) - 5 - 23 + 1}"]
    assert m.mer30 == plus and m.strand == "m"


def test_window_without_full_30mer_context_is_not_reported():
    seq = "AC" + "ACGTACGTACGTACGTACGA" + "TGG" + "CAT"  # only 2 nt upstream of the protospacer
    assert [s for s in iter_sites("x", seq) if s.strand == "p"] == []


def test_non_acgt_record_is_named_or_skipped(tmp_path):
    fa = tmp_path / "in.fa"
    fa.write_text(">good\nACGTACGT\n>bad_one\nACGNACGT\n")
    with pytest.raises(InputError, match=r"in\.fa, record bad_one: non-ACGT character\(s\) 'N'"):
        extract_mers(fa, tmp_path / "a.fa", tmp_path / "b.fa")
    assert not (tmp_path / "a.fa").exists() and not (tmp_path / "b.fa").exists()
    assert list(read_fasta(fa, on_bad_record="skip")) == ["good"]


def test_duplicate_fasta_names_raise(tmp_path):
    fa = tmp_path / "dup.fa"
    fa.write_text(">x\nACGT\n>x\nACGT\n")
    with pytest.raises(InputError, match="record x: duplicate record name"):
        read_fasta(fa)
