import numpy as np
import pandas as pd
import pytest

from omicslm.crispr.fasta import revcomp, write_fasta
from omicslm.crispr.join import join_guides, read_guides
from omicslm.crispr.kmers import extract_mers
from omicslm.crispr.split import split_guides
from omicslm.crispr.tokenize import CLS, SEP, build_dataset, check_vocab_file, dnabert_vocab, kmer_ids, load_dataset, \
    write_vocab
from omicslm.errors import InputError

G1, G2 = "ACGTACGTACGTACGTACGA", "TTTTACGTACGTACGTCCCA"


def make_inputs(tmp_path, oligos, labels):
    write_fasta(tmp_path / "o.fa", oligos)
    pd.DataFrame(labels, columns=["id", "grna", "efficiency"]).to_csv(tmp_path / "l.tsv", sep="\t", index=False)
    extract_mers(tmp_path / "o.fa", tmp_path / "23.fa", tmp_path / "30.fa")


def test_join_finds_sites_on_either_strand_and_reports_missing(tmp_path, caplog):
    minus_oligo = revcomp("GGGG" + G2 + "AGG" + "AAAA")
    make_inputs(tmp_path, [("o1", "CCTTTT" + G1 + "TGGCATT"), ("o2", minus_oligo), ("o3", "ACGT" * 10)],
                [("o1", G1, 10.0), ("o2", G2, 20.0), ("o3", G1, 30.0)])
    counts = join_guides(tmp_path / "l.tsv", tmp_path / "30.fa", tmp_path / "g.tsv")
    assert counts == {"joined": 2, "missing": 1, "multiple": 0}
    g = read_guides(tmp_path / "g.tsv").set_index("id")
    assert g.loc["o1", "mer30"] == "TTTT" + G1 + "TGGCAT" and g.loc["o1", "site"] == "o1_p_7"
    assert g.loc["o2", "mer30"] == "GGGG" + G2 + "AGGAAA" and "_m_" in g.loc["o2", "site"]
    assert "o3" in caplog.text
    with pytest.raises(InputError, match=r"record o3: gRNA ACGTACGTACGTACGTACGA followed by NGG not found"):
        join_guides(tmp_path / "l.tsv", tmp_path / "30.fa", tmp_path / "g2.tsv", on_missing="error")
    assert not (tmp_path / "g2.tsv").exists()


def test_join_multiple_policies(tmp_path):
    site = "TTTT" + G1 + "TGGCAT"
    make_inputs(tmp_path, [("o1", site + "A" + site)], [("o1", G1, 10.0)])
    assert join_guides(tmp_path / "l.tsv", tmp_path / "30.fa", tmp_path / "g.tsv")["multiple"] == 1
    assert read_guides(tmp_path / "g.tsv").site.tolist() == ["o1_p_5"]
    with pytest.raises(InputError, match="record o1: gRNA .* matches 2 sites of its oligo: o1_p_5, o1_p_36"):
        join_guides(tmp_path / "l.tsv", tmp_path / "30.fa", tmp_path / "g.tsv", on_multiple="error")


def guides_table(path, n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        spacer = "".join(rng.choice(list("ACGT"), 20))
        # every third guide repeats an earlier spacer: the split must keep them together
        if i % 3 == 2:
            spacer = rows[i - 1][1]
        mer30 = "".join(rng.choice(list("ACGT"), 4)) + spacer + "AGG" + "".join(rng.choice(list("ACGT"), 3))
        rows.append((f"g{i}", spacer, f"g{i}_p_5", mer30, float(rng.uniform(0, 100))))
    pd.DataFrame(rows, columns=["id", "grna", "site", "mer30", "efficiency"]).to_csv(path, sep="\t", index=False)
    return path


def test_split_is_seeded_and_keeps_each_grna_in_one_split(tmp_path):
    g = guides_table(tmp_path / "g.tsv")
    counts = split_guides(g, tmp_path / "s1.tsv", dev_fraction=0.2, test_fraction=0.2, seed=3)
    split_guides(g, tmp_path / "s2.tsv", dev_fraction=0.2, test_fraction=0.2, seed=3)
    assert (tmp_path / "s1.tsv").read_text() == (tmp_path / "s2.tsv").read_text()
    assert sum(counts.values()) == 60 and min(counts.values()) > 0
    s = pd.read_csv(tmp_path / "s1.tsv", sep="\t").merge(pd.read_csv(g, sep="\t"), on="id")
    assert (s.groupby("grna").role.nunique() == 1).all()


def test_dnabert_vocab_order():
    vocab = dnabert_vocab(6)
    assert len(vocab) == 4101
    assert vocab[:7] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "AAAAAA", "AAAAAT"]
    assert vocab[5 + 4 ** 6 - 1] == "GGGGGG" and vocab.index("ATCGAT") == 5 + int("012301", 4)


def test_kmer_ids_and_vocab_file_check(tmp_path):
    ids = kmer_ids("AAAAAAT", 6)
    assert ids == [CLS, 5, 6, SEP]
    write_vocab(tmp_path / "vocab.txt", 6)
    check_vocab_file(tmp_path / "vocab.txt", 6)
    bad = dnabert_vocab(6)
    bad[5], bad[6] = bad[6], bad[5]
    (tmp_path / "bad.txt").write_text("\n".join(bad))
    with pytest.raises(InputError, match="not the DNABERT-6 vocabulary: token 5 is 'AAAAAT', expected 'AAAAAA'"):
        check_vocab_file(tmp_path / "bad.txt", 6)


def test_dataset_npz(tmp_path):
    g = guides_table(tmp_path / "g.tsv", n=30)
    split_guides(g, tmp_path / "s.tsv", dev_fraction=0.2, test_fraction=0.2, seed=0)
    assert build_dataset(g, tmp_path / "s.tsv", tmp_path / "d.npz") == 30
    d = load_dataset(tmp_path / "d.npz")
    assert d["input_ids"].shape == (30, 27) and d["input_ids"][:, 0].tolist() == [CLS] * 30
    assert np.isnan(d["energy"]).all() and set(d["role"]) == {"train", "dev", "test"}
    first = pd.read_csv(g, sep="\t").mer30[0]
    assert d["input_ids"][0, 1] == dnabert_vocab(6).index(first[:6])
