import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from jsonschema import ValidationError

from omicslm.config import load_config, missing_paths
from omicslm.crispr.fasta import iter_fasta, read_fasta, revcomp
from omicslm.crispr.io import cut_context, read_labels, read_table, table_to_inputs, xlsx_to_inputs
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


# --- your own table (crispr.data.source: table) and bad input files ---------------------------------------------

CTX1, CTX2 = "TTTT" + G1 + "TGG" + "CAT", "CCCC" + G2 + "AGG" + "AAA"
OWN = dict(label_column="eff", label_scale=1.0, id_prefix="row", row_base=2)  # as scripts/crispr_inputs.py calls it


def own(tmp_path, name="own", **kw):
    """Run table_to_inputs on a user table; -> (fasta text, labels text)."""
    fa, tsv = tmp_path / f"{name}.fa", tmp_path / f"{name}.tsv"
    table_to_inputs(kw.pop("path"), fa, tsv, **{**OWN, **kw})
    return fa.read_text(), tsv.read_text()


@pytest.mark.parametrize("suffix, sep", [(".csv", ","), (".tsv", "\t"), (".txt", "\t")])
def test_own_table_context_column(tmp_path, suffix, sep):
    path = tmp_path / f"screen{suffix}"
    pd.DataFrame({"guide": ["g1", "g2", "g3"], "ctx": [CTX1.lower(), CTX2, CTX1], "eff": [40, 12.5, 60]}).to_csv(
        path, sep=sep, index=False)
    fa, labels = own(tmp_path, path=path, context_column="ctx", id_column="guide")
    assert fa == f">g1\n{CTX1}\n>g2\n{CTX2}\n"  # upper-cased; g3 repeats g1's 30mer: merged (mean 50)
    assert labels == f"id\tgrna\tefficiency\ng1\t{G1}\t50\ng2\t{G2}\t12.5\n"


def test_own_table_spacer_and_sequence_give_the_context_columns_30mers(tmp_path):
    long2 = "GATTACA" + revcomp(CTX2) + "GG"  # G2 sits on the minus strand of a longer sequence
    pd.DataFrame({"ctx": [CTX1, CTX2], "eff": [0.4, 0.125]}).to_csv(tmp_path / "ctx.csv", index=False)
    with pd.ExcelWriter(tmp_path / "site.xlsx") as xw:
        pd.DataFrame({"x": [1]}).to_excel(xw, sheet_name="notes", index=False)
        pd.DataFrame({"spacer": [G1, G2.lower()], "seq": ["AC" + CTX1 + "T", long2], "eff": [0.4, 0.125]}).to_excel(
            xw, sheet_name="guides", index=False)
    by_ctx = own(tmp_path, "a", path=tmp_path / "ctx.csv", context_column="ctx", label_scale=100)
    by_site = own(tmp_path, "b", path=tmp_path / "site.xlsx", sheet="guides", context_column=None,
                  spacer_column="spacer", sequence_column="seq", label_scale=100)
    assert by_site == by_ctx == (f">row_2\n{CTX1}\n>row_3\n{CTX2}\n",
                                 f"id\tgrna\tefficiency\nrow_2\t{G1}\t40\nrow_3\t{G2}\t12.5\n")


def test_cut_context_problems():
    assert cut_context(G1, "A" + CTX1) == CTX1 and cut_context(G2, revcomp(CTX2)) == CTX2
    for seq, message in [(CTX1[2:], "fewer than 4 nt before it"), (CTX1[:-1], "or 3 nt after it"),
                         ("A" * 40, "not found in the sequence"), (CTX1 + "A" + CTX1.replace("TTTT", "GGGG"),
                                                                   "occurs at 2 sites")]:
        with pytest.raises(ValueError, match=message):
            cut_context(G1, seq)
    with pytest.raises(ValueError, match="'ACGN' is not 20 nt of ACGT"):
        cut_context("ACGN", CTX1)


@pytest.mark.parametrize("row, message", [
    (("g2", CTX2.replace("AGG", "ANG"), 5), r"own\.csv, record g2: 30mer .* has non-ACGT"),
    (("g2", CTX2[:-1], 5), r"own\.csv, record g2: 30mer .* has length 29, expected 30"),
    (("g2", CTX2.replace("AGG", "AGC"), 5), r"own\.csv, record g2: 30mer .* no NGG PAM after the spacer \(nt 25-27"),
    (("g1", CTX2, 5), r"own\.csv, record g1: duplicate id"),
    (("g2", CTX2, 101), r"own\.csv, record g2: efficiency 101.0 outside \[0, 100\]"),
    (("g2", CTX2, "n/a"), r"own\.csv: row 3, column 'eff': 'n/a' is not a number"),
    (("g2", "", 5), r"own\.csv: row 3, column 'ctx': blank cell"),
])
def test_own_table_bad_records_name_file_and_record(tmp_path, row, message):
    pd.DataFrame([("g1", CTX1, 40), row], columns=["guide", "ctx", "eff"]).to_csv(tmp_path / "own.csv", index=False)
    with pytest.raises(InputError, match=message):
        own(tmp_path, path=tmp_path / "own.csv", context_column="ctx", id_column="guide", label_range=(0, 100))
    assert not (tmp_path / "own.fa").exists() and not (tmp_path / "own.tsv").exists()


def test_own_table_skip_policy_logs_and_counts(tmp_path, caplog):
    pd.DataFrame({"spacer": [G1, G2, "ACGT", G1], "seq": [CTX1, "A" * 30, CTX1, None],
                  "eff": [40, 5, 5, 7]}).to_csv(tmp_path / "own.csv", index=False)
    fa, labels = own(tmp_path, path=tmp_path / "own.csv", context_column=None, spacer_column="spacer",
                     sequence_column="seq", on_bad_record="skip")
    assert fa == f">row_2\n{CTX1}\n" and labels == f"id\tgrna\tefficiency\nrow_2\t{G1}\t40\n"
    assert "skipping record row_3: spacer" in caplog.text and "skipping row 5, column 'seq': blank cell" in caplog.text
    assert "skipped 3 rows (blank cell: 1, spacer: 2)" in caplog.text


def test_own_table_all_rows_skipped_is_an_error(tmp_path):
    pd.DataFrame({"ctx": ["ACGT"], "eff": [5]}).to_csv(tmp_path / "own.csv", index=False)
    with pytest.raises(InputError, match=r"own\.csv: no usable rows: all 1 data rows were skipped"):
        own(tmp_path, path=tmp_path / "own.csv", context_column="ctx", on_bad_record="skip")


def merged_cell_workbook(path):
    """The test workbook with the label sheet's gRNA of row 3 merged into row 2's and an empty row 4 (ignored)."""
    workbook(path, labels=[(1, G1, 55.5), (2, G2, 12.0), (None, None, None), (3, G2, 1.0)])
    book = openpyxl.load_workbook(path)
    book[SHEETS["label_sheet"]].merge_cells("B2:B3")
    book.save(path)
    return path


def test_workbook_blank_or_merged_cell_named_by_sheet_row_column(tmp_path, caplog):
    xlsx = merged_cell_workbook(tmp_path / "wb.xlsx")
    with pytest.raises(InputError, match=r"wb\.xlsx: sheet 'spCas9_eff_D10\+dox', row 3, column 'gRNA': blank cell "
                                         r"\(empty, or inside a merged cell\)"):
        xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", **SHEETS)
    assert not (tmp_path / "l.tsv").exists()
    assert xlsx_to_inputs(xlsx, tmp_path / "o.fa", tmp_path / "l.tsv", on_bad_record="skip", **SHEETS) == (2, 2)
    assert read_labels(tmp_path / "l.tsv").id.tolist() == ["1", "3"] and "skipped 1 rows (blank cell: 1)" in caplog.text


def test_own_xlsx_table_blank_cell_named_by_sheet_row_column(tmp_path):
    with pd.ExcelWriter(tmp_path / "own.xlsx") as xw:
        pd.DataFrame({"ctx": [CTX1, CTX2], "eff": [40, None]}).to_excel(xw, sheet_name="S", index=False)
    with pytest.raises(InputError, match=r"own\.xlsx: sheet 'S', row 3, column 'eff': blank cell"):
        own(tmp_path, path=tmp_path / "own.xlsx", context_column="ctx")


def damaged_workbooks(tmp_path):
    """(name, path, expected message) of files named .xlsx that are not readable workbooks."""
    good = workbook(tmp_path / "good.xlsx")
    data = good.read_bytes()
    (tmp_path / "text.xlsx").write_text("Surrogate ID,gRNA\n1,ACGT\n")
    (tmp_path / "truncated.xlsx").write_bytes(data[:len(data) // 2])
    (tmp_path / "zero.xlsx").write_bytes(b"")
    with zipfile.ZipFile(good) as zf:  # a damaged member inside an intact zip directory
        info = zf.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    damaged = bytearray(data)
    damaged[start:start + 40] = bytes(b ^ 0xFF for b in damaged[start:start + 40])
    (tmp_path / "damaged.xlsx").write_bytes(bytes(damaged))
    unreadable = r"not a readable \.xlsx workbook|cannot read sheet"
    return [("text.xlsx", r"text\.xlsx: not a readable \.xlsx workbook \(BadZipFile: File is not a zip file\)"),
            ("truncated.xlsx", r"truncated\.xlsx: not a readable \.xlsx workbook \(BadZipFile"),
            ("zero.xlsx", r"zero\.xlsx: empty file \(0 bytes\)"),
            ("damaged.xlsx", rf"damaged\.xlsx: ({unreadable})")]


def test_damaged_workbook_is_named(tmp_path):
    for name, message in damaged_workbooks(tmp_path):
        with pytest.raises(InputError, match=message):
            xlsx_to_inputs(tmp_path / name, tmp_path / "o.fa", tmp_path / "l.tsv", **SHEETS)
        with pytest.raises(InputError, match=message):
            own(tmp_path, path=tmp_path / name, context_column="ctx")
    assert not (tmp_path / "o.fa").exists() and not (tmp_path / "own.fa").exists()


@pytest.mark.parametrize("text, message", [
    ("", r"t\.csv: empty file \(0 bytes\)"),
    ("\n\n", r"t\.csv: no header row \(only blank lines\)"),
    ("30mer,score_drug_gene_rank\n", r"t\.csv: the table has a header row but no data rows"),
    ("30mer,score_drug_gene_rank\n\n\n", r"t\.csv: the table has a header row but no data rows"),
])
def test_empty_or_header_only_csv_fails_in_the_inputs_step(tmp_path, text, message):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        table_to_inputs(tmp_path / "t.csv", tmp_path / "o.fa", tmp_path / "l.tsv")
    assert not (tmp_path / "o.fa").exists() and not (tmp_path / "l.tsv").exists()


def test_header_only_sheet_and_unknown_suffix_are_named(tmp_path):
    workbook(tmp_path / "wb.xlsx", labels=[(None, None, None)])
    with pytest.raises(InputError, match=r"wb\.xlsx: sheet 'spCas9_eff_D10\+dox' has a header row but no data rows"):
        xlsx_to_inputs(tmp_path / "wb.xlsx", tmp_path / "o.fa", tmp_path / "l.tsv", **SHEETS)
    (tmp_path / "t.xls").write_text("x")
    with pytest.raises(InputError, match=r"t\.xls: unknown table type '\.xls': name it \.csv"):
        read_table(tmp_path / "t.xls")
    with pytest.raises(InputError, match=r"own\.xlsx: no sheet\(s\) 'S'; sheets are 'Sheet1'"):
        pd.DataFrame({"ctx": [CTX1], "eff": [1]}).to_excel(tmp_path / "own.xlsx", index=False)
        own(tmp_path, path=tmp_path / "own.xlsx", sheet="S", context_column="ctx")


@pytest.mark.parametrize("text, message", [("", r"e\.fa: empty fasta: no '>' record \(0 bytes\)"),
                                           ("\n \n", r"e\.fa: empty fasta: no '>' record$")])
def test_empty_fasta_is_an_error(tmp_path, text, message):
    (tmp_path / "e.fa").write_text(text)
    with pytest.raises(InputError, match=message):
        read_fasta(tmp_path / "e.fa")
    with pytest.raises(InputError, match=message):
        list(iter_fasta(tmp_path / "e.fa"))
    assert list(iter_fasta(tmp_path / "e.fa", allow_empty=True)) == []


def test_table_source_config_names_the_missing_key_and_the_file():
    root = Path(__file__).resolve().parents[2]
    table = {"path": "no/such.csv", "label_column": "eff", "spacer_column": "spacer"}
    with pytest.raises(ValidationError, match="None is not of type 'string'") as err:
        load_config(root / "config.yaml", overrides={"crispr": {"data": {"source": "table", "table": table}}})
    assert list(err.value.absolute_path) == ["crispr", "data", "table", "sequence_column"]
    table["sequence_column"] = "seq"
    config = load_config(root / "config.yaml", overrides={"crispr": {"data": {"source": "table", "table": table}}})
    assert config["crispr"]["data"]["table"]["label_scale"] == 1 and config["crispr"]["data"]["table"]["sheet"] is None
    assert "crispr.data.table.path: no/such.csv" in missing_paths(config)
