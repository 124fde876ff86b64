import pandas as pd
import pytest

from omicslm.crispr.fasta import read_fasta
from omicslm.crispr.io import read_labels, table_to_inputs, xlsx_to_inputs
from omicslm.errors import InputError

SHEETS = dict(oligo_sheet="TRAP12K microarray oligos", oligo_id_column="Surrogate ID",
              oligo_seq_column="sequences (5'to3')", label_sheet="spCas9_eff_D10+dox", label_id_column="Surrogate ID",
              grna_column="gRNA", label_column="total_indel_eff")
G1, G2 = "ACGTACGTACGTACGTACGA", "TTTTACGTACGTACGTCCCA"


def workbook(path, oligos=None, labels=None, drop_sheet=None):
    oligos = oligos or [(1, "ttttACGT" + G1 + "TGGcat"), (2, "cccc" + G2 + "AGGAAAAA")]
    labels = labels or [(1, G1, 55.5), (2, G2, 12.0)]
    frames = {SHEETS["oligo_sheet"]: pd.DataFrame(oligos, columns=["Surrogate ID", "sequences (5'to3')"]),
              SHEETS["label_sheet"]: pd.DataFrame(labels, columns=["Surrogate ID", "gRNA", "total_indel_eff"])}
    with pd.ExcelWriter(path) as xw:
        for name, df in frames.items():
            if name != drop_sheet:
                df.to_excel(xw, sheet_name=name, index=False)
    return path


def test_workbook_to_fasta_and_labels(tmp_path):
    xlsx = workbook(tmp_path / "wb.xlsx")
    assert xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", **SHEETS) == (2, 2)
    fa = read_fasta(tmp_path / "o.fa")
    assert fa["1"] == "TTTTACGT" + G1 + "TGGCAT"  # lower-case vector flanks upper-cased
    labels = read_labels(tmp_path / "l.tsv")
    assert labels.id.tolist() == ["1", "2"] and labels.efficiency.tolist() == [55.5, 12.0]


def test_missing_sheet_is_named(tmp_path):
    xlsx = workbook(tmp_path / "wb.xlsx", drop_sheet=SHEETS["label_sheet"])
    with pytest.raises(InputError, match=r"no sheet\(s\) 'spCas9_eff_D10\+dox'"):
        xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", **SHEETS)
    assert not (tmp_path / "o.fa").exists()


def test_missing_column_is_named(tmp_path):
    xlsx = workbook(tmp_path / "wb.xlsx")
    with pytest.raises(InputError, match=r"sheet 'spCas9_eff_D10\+dox' has no column\(s\) 'indel'"):
        xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", **{**SHEETS, "label_column": "indel"})


@pytest.mark.parametrize("labels, message", [
    ([(1, G1, 55.5), (2, "ACGTNCGTACGTACGTACGA", 1.0)], "record 2: gRNA 'ACGTNCGTACGTACGTACGA' has non-ACGT"),
    ([(1, G1, 55.5), (2, G2[:-1], 1.0)], "record 2: gRNA .* has length 19, expected 20"),
    ([(1, G1, 55.5), (1, G2, 1.0)], "record 1: duplicate id"),
    ([(1, G1, 55.5), (2, G2, 101.0)], r"record 2: efficiency 101.0 outside \[0.0, 100.0\]"),
])
def test_bad_label_records_raise_naming_the_record(tmp_path, labels, message):
    xlsx = workbook(tmp_path / "wb.xlsx", labels=labels)
    with pytest.raises(InputError, match=message):
        xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", **SHEETS)
    assert not (tmp_path / "l.tsv").exists() and not (tmp_path / "o.fa").exists()


def test_skip_policy_drops_and_counts_bad_records(tmp_path, caplog):
    labels = [(1, G1, 55.5), (2, G2, -3.0), (3, "ACGT", 5.0)]
    oligos = [(1, "TTTT" + G1 + "TGGCAT"), (2, "NNNN" + G2 + "AGGAAA"), (3, "ACGT" * 10)]
    xlsx = workbook(tmp_path / "wb.xlsx", oligos=oligos, labels=labels)
    assert xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", on_bad_record="skip", **SHEETS) == (2, 1)
    assert "skipped 2 records" in caplog.text and "skipping oligo 2" in caplog.text
    assert read_labels(tmp_path / "l.tsv").id.tolist() == ["1"]


def test_doench_table_scaled_and_repeated_30mers_merged(tmp_path):
    ctx1 = "TTTT" + G1 + "TGG" + "CAT"
    ctx2 = "CCCC" + G2 + "AGG" + "AAA"
    pd.DataFrame({"30mer": [ctx1, ctx2, ctx1], "score_drug_gene_rank": [0.2, 0.5, 0.4]}).to_csv(tmp_path / "t.csv")
    table_to_inputs(tmp_path / "t.csv", tmp_path / "o.fa", tmp_path / "l.tsv")
    labels = read_labels(tmp_path / "l.tsv").set_index("grna")
    assert labels.loc[G1, "efficiency"] == pytest.approx(30.0) and labels.loc[G2, "efficiency"] == pytest.approx(50.0)
    assert read_fasta(tmp_path / "o.fa")[labels.loc[G1, "id"]] == ctx1


def test_doench_label_out_of_range_is_named(tmp_path):
    pd.DataFrame({"30mer": ["TTTT" + G1 + "TGGCAT"], "score_drug_gene_rank": [1.5]}).to_csv(tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"t\.csv, record FCRES_0: efficiency 150.0 outside"):
        table_to_inputs(tmp_path / "t.csv", tmp_path / "o.fa", tmp_path / "l.tsv")
