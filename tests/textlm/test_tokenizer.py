import json

import pytest

from omicslm.errors import InputError
from omicslm.textlm.tokenizer import (GPT2_CHECK_IDS, check_gpt2_encoding, load_bpe, load_tokenizer,
                                      make_tokenizers)


def test_real_gpt2_bpe_and_its_roberta_layout(gpt2_bpe, tmp_path):
    n_clm, n_mlm = make_tokenizers(tmp_path / "clm", tmp_path / "mlm", source="gpt2", bpe_dir=gpt2_bpe)
    clm, mlm = load_tokenizer(tmp_path / "clm"), load_tokenizer(tmp_path / "mlm")
    assert (n_clm, n_mlm) == (50257, 50262)
    assert clm("Hello world")["input_ids"] == GPT2_CHECK_IDS == [15496, 995]
    assert clm.eos_token_id == clm.pad_token_id == 50256
    # RoBERTa layout: specials 0-3, BPE ids + 4, <mask> last; a small pad id keeps the position table small
    assert mlm("Hello world", add_special_tokens=False)["input_ids"] == [15500, 999]
    assert (mlm.bos_token_id, mlm.pad_token_id, mlm.eos_token_id, mlm.mask_token_id) == (0, 1, 2, 50261)
    assert mlm("capital of <mask>.")["input_ids"][-3:] == [50261, 17, 2]  # mask swallows the space before it


def test_missing_tokenizer_file_is_named(tiny_bpe, tmp_path):
    (tmp_path / "vocab.json").write_text((tiny_bpe / "vocab.json").read_text())
    with pytest.raises(InputError, match="missing: merges.txt") as e:
        load_bpe(tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(InputError, match="missing: vocab.json, merges.txt"):
        make_tokenizers(tmp_path / "c", tmp_path / "m", source="gpt2", bpe_dir=tmp_path / "nothing")
    assert not (tmp_path / "c").exists() and not (tmp_path / "m").exists()


def test_a_bpe_that_is_not_gpt2s_is_rejected(tiny_bpe, tmp_path):
    with pytest.raises(InputError, match=r"not the GPT-2 BPE: 'Hello world' encodes to .* with 300 ids"):
        check_gpt2_encoding(load_bpe(tiny_bpe), tiny_bpe)
    with pytest.raises(InputError, match="not the GPT-2 BPE"):
        make_tokenizers(tmp_path / "c", tmp_path / "m", source="gpt2", bpe_dir=tiny_bpe)
    assert not (tmp_path / "c").exists()


def test_local_bpe_gets_both_layouts(tiny_tokenizers, tiny_bpe):
    clm, mlm = load_tokenizer(tiny_tokenizers / "clm"), load_tokenizer(tiny_tokenizers / "mlm")
    vocab = json.loads((tiny_bpe / "vocab.json").read_text())
    assert len(clm) == len(vocab) == 300 and len(mlm) == 305
    text = "To be, or not to be"
    assert [i + 4 for i in clm(text)["input_ids"]] == mlm(text, add_special_tokens=False)["input_ids"]


def test_trained_bpe(tmp_path, text_files):
    from omicslm.textlm.corpus import build_corpus

    build_corpus(tmp_path / "corpus", files=text_files, validation_fraction=0.2, seed=0)
    n_clm, n_mlm = make_tokenizers(tmp_path / "clm", tmp_path / "mlm", source="train",
                                   corpus_dir=tmp_path / "corpus", vocab_size=280, min_frequency=1)
    assert n_clm <= 280 and n_mlm == n_clm + 5
    tok = load_tokenizer(tmp_path / "clm")
    assert tok.decode(tok("Tomorrow, and tomorrow")["input_ids"]) == "Tomorrow, and tomorrow"
