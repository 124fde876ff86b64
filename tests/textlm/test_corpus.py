import datasets
import numpy as np
import pytest

from omicslm.errors import InputError
from omicslm.textlm.corpus import build_corpus, expand_globs, paragraphs, read_text, split_documents


@pytest.mark.parametrize("text", ["", "one line", "a\n\nb\n", "a\n \n\n\nb\n\nc", "x\n\n\n", "\n\nlead"])
def test_paragraphs_join_back_to_the_text(text):
    assert "".join(paragraphs(text)) == text


def test_paragraphs_end_after_blank_lines():
    assert paragraphs("ROMEO:\nhi\n\nJULIET:\nho\n") == ["ROMEO:\nhi\n\n", "JULIET:\nho\n"]


def test_split_is_by_document_seeded_and_never_empty():
    a = split_documents(10, validation_fraction=0.2, seed=3)
    assert a.sum() == 2 and np.array_equal(a, split_documents(10, validation_fraction=0.2, seed=3))
    assert split_documents(2, validation_fraction=0.01, seed=0).sum() == 1
    assert split_documents(2, validation_fraction=0.99, seed=0).sum() == 1
    with pytest.raises(ValueError, match="at least 2 documents"):
        split_documents(1, validation_fraction=0.5, seed=0)


def test_build_corpus_keeps_documents_whole(tmp_path, text_files):
    out = tmp_path / "corpus"
    counts = build_corpus(out, files=text_files, validation_fraction=0.2, seed=1)
    dd = datasets.load_from_disk(str(out))
    assert counts == {"train": len(dd["train"]), "validation": len(dd["validation"])}
    train_docs, val_docs = set(dd["train"]["doc"]), set(dd["validation"]["doc"])
    assert len(val_docs) == 1 and not train_docs & val_docs
    assert train_docs | val_docs == {f.name for f in text_files}
    for doc in val_docs:  # rows of a document join back to the file, byte for byte
        text = "".join(t for t, d in zip(dd["validation"]["text"], dd["validation"]["doc"]) if d == doc)
        assert text == (text_files[0].parent / doc).read_text()


def test_undecodable_bytes_name_file_and_offset(tmp_path, text_files):
    bad = text_files[1]
    bad.write_bytes(b"HAMLET:\nTo be\xff or not\n")
    out = tmp_path / "corpus"
    with pytest.raises(InputError) as e:
        build_corpus(out, files=text_files, validation_fraction=0.2, seed=1)
    assert str(bad) in str(e.value) and "byte offset 13" in str(e.value) and "0xff" in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".corpus*"))
    assert read_text(bad, encoding_errors="replace") == "HAMLET:\nTo be\ufffd or not\n"
    build_corpus(out, files=text_files, validation_fraction=0.2, seed=1, encoding_errors="replace")
    assert out.is_dir()


def test_empty_corpus_is_an_error(tmp_path):
    empty = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for f in empty:
        f.write_text("")
    with pytest.raises(InputError, match="empty corpus"):
        build_corpus(tmp_path / "c1", files=empty)
    with pytest.raises(InputError, match="no text files"):
        build_corpus(tmp_path / "c2", files=expand_globs([str(tmp_path / "*.md")]))
    empty[0].write_text("some text\n")
    empty[1].write_text("\n\n  \n")
    with pytest.raises(InputError, match="split has no text"):
        build_corpus(tmp_path / "c3", files=empty, validation_fraction=0.5, seed=0)
    assert not any(p.name.startswith(("c1", "c2", "c3", ".c")) for p in tmp_path.iterdir())


def test_saved_dataset_source(tmp_path):
    src = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": ["first doc\n\nmore", "second doc", "third\n\ndoc\n"]}).save_to_disk(str(src))
    with pytest.raises(InputError, match="no text column 'text'"):
        build_corpus(tmp_path / "c", dataset=str(src))
    build_corpus(tmp_path / "c", dataset=str(src), text_column="body", validation_fraction=0.34, seed=0)
    dd = datasets.load_from_disk(str(tmp_path / "c"))
    assert len(set(dd["validation"]["doc"])) == 1 and len(set(dd["train"]["doc"])) == 2
    assert sorted(src.iterdir()) == sorted((tmp_path / "saved").iterdir())  # no cache files written into it
    assert not list(src.glob("cache-*"))


def test_a_utf8_byte_order_mark_is_not_text(tmp_path):
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfHAMLET:\nTo be\n")
    assert read_text(f) == "HAMLET:\nTo be\n"
