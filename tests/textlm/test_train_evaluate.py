import json
import math

import numpy as np
import pandas as pd
import pytest

from omicslm.errors import InputError
from omicslm.textlm.chunking import chunk_corpus, tokenize_corpus
from omicslm.textlm.corpus import build_corpus
from omicslm.textlm.evaluate import (COLUMNS, SCORE_COLUMNS, combine_eval, evaluate_lm, mlm_targets, score_texts,
                                     unigram_logprobs)
from omicslm.textlm.plot import plot_loss_curves
from omicslm.textlm.tokenizer import load_tokenizer
from omicslm.textlm.train import model_config, train_lm

BLOCK = 16
TINY = {"clm": {"n_embd": 16, "n_layer": 1, "n_head": 2},
        "mlm": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}}
TRAIN = dict(per_device_train_batch_size=4, per_device_eval_batch_size=8, learning_rate=5e-3,
             lr_scheduler_type="cosine", warmup_steps=0.1, weight_decay=0.01, eval_steps=2, logging_steps=1,
             save_steps=2, save_total_limit=2, seed=3, max_steps=4)


@pytest.fixture(scope="module")
def chunks(tmp_path_factory, tiny_tokenizers):
    from tests.textlm.conftest import DOCS

    root = tmp_path_factory.mktemp("lm")
    for name, text in DOCS.items():
        (root / name).write_text(text * 6)
    build_corpus(root / "corpus", files=sorted(root.glob("*.txt")), validation_fraction=0.2, seed=0)
    for kind in ("clm", "mlm"):
        tokenize_corpus(root / "corpus", tiny_tokenizers / kind, root / f"tok_{kind}")
        chunk_corpus(root / f"tok_{kind}", root / f"chunks_{kind}", block_size=BLOCK)
    return root


def test_model_config_checks_vocabulary_and_positions(tiny_tokenizers):
    clm, mlm = load_tokenizer(tiny_tokenizers / "clm"), load_tokenizer(tiny_tokenizers / "mlm")
    cfg = model_config("clm", clm, block_size=BLOCK, overrides=TINY["clm"])
    assert (cfg.vocab_size, cfg.n_positions, cfg.eos_token_id) == (300, BLOCK, clm.eos_token_id)
    cfg = model_config("mlm", mlm, block_size=BLOCK, overrides=TINY["mlm"])
    assert (cfg.vocab_size, cfg.max_position_embeddings, cfg.pad_token_id) == (305, BLOCK + 2, 1)
    with pytest.raises(InputError, match=r"model vocabulary \(200 ids\) is smaller than the tokenizer's \(300 ids\)"):
        model_config("clm", clm, block_size=BLOCK, overrides={"vocab_size": 200}, source="textlm.models.gpt2")
    with pytest.raises(InputError, match="n_positions 8 < block_size 16"):
        model_config("clm", clm, block_size=BLOCK, overrides={"n_positions": 8})


def test_chunks_from_another_tokenizer_are_rejected(chunks, tiny_tokenizers, tmp_path):
    # mlm chunks hold ids up to 303 (BPE + 4); a 300-id causal model cannot embed them
    with pytest.raises(InputError, match="token id 30[0-3] >= model vocabulary 300"):
        train_lm(chunks / "chunks_mlm", tiny_tokenizers / "clm", tmp_path / "m", work_dir=tmp_path / "w",
                 objective="clm", model=TINY["clm"], training=TRAIN)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_train_resume_evaluate(objective, chunks, tiny_tokenizers, tmp_path):
    out, work = tmp_path / "lm", tmp_path / "work"
    kw = dict(work_dir=work, objective=objective, model=TINY[objective], max_eval_blocks=4, name=objective)
    first = train_lm(chunks / f"chunks_{objective}", tiny_tokenizers / objective, out, training=TRAIN, **kw)
    assert first["steps"] == 4 and first["resumed_from"] is None
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert list((work / "tensorboard").glob("events.out.tfevents.*"))
    # a job killed while saving checkpoint-6 left it half written: resume from checkpoint-4 instead
    partial = work / "checkpoint-6"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes((work / "checkpoint-4" / "model.safetensors").read_bytes()[:100])
    (partial / "trainer_state.json").write_text('{"global_step": 6, "log_hist')
    # a longer run picks up the last complete checkpoint instead of starting over
    second = train_lm(chunks / f"chunks_{objective}", tiny_tokenizers / objective, out,
                      training={**TRAIN, "max_steps": 6}, **kw)
    assert second["resumed_from"].endswith("checkpoint-4") and second["steps"] == 6
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert history["step"].max() == 6 and history["eval_loss"].notna().sum() >= 3
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 6
    # another learning rate is another run: the finished one is set aside, never resumed as if it were the new one
    other = tmp_path / "other"
    changed = train_lm(chunks / f"chunks_{objective}", tiny_tokenizers / objective, other,
                       training={**TRAIN, "max_steps": 6, "learning_rate": 1e-3}, **kw)
    assert changed["resumed_from"] is None and changed["steps"] == 6
    assert {p.name for p in (work / "previous_config").iterdir()} >= {"checkpoint-4", "checkpoint-6", "tensorboard",
                                                                       "run_config.json"}
    assert json.loads((work / "run_config.json").read_text())["training"]["learning_rate"] == 1e-3

    row = evaluate_lm(chunks / f"chunks_{objective}", out / "model", tmp_path / "eval.tsv", objective=objective,
                      name=objective, train_summary=out / "train_summary.json", max_blocks=4, prompt="ROMEO:",
                      max_new_tokens=5, fill_mask_texts=["To be, or not to <mask>."], top_n=3, seed=1)
    table = pd.read_csv(tmp_path / "eval.tsv", sep="\t")
    assert list(table.columns) == COLUMNS and table.loc[0, "model"] == objective
    vocab = 300 if objective == "clm" else 305
    # an untrained model is near uniform over the vocabulary; the unigram baseline is far better than uniform
    assert vocab / 3 < row["untrained_perplexity"] < vocab * 3
    assert 1 < row["unigram_perplexity"] < vocab and row["steps"] == 6
    assert row["eval_targets"] == (4 * (BLOCK - 1) if objective == "clm" else row["eval_targets"])
    if objective == "clm":
        assert row["output"].startswith("ROMEO:") and len(row["output"]) > len("ROMEO:")
    else:
        assert row["probe"] == "To be, or not to <mask>." and len(row["output"].split(" / ")) == 3
    # your own text: one document, its bits per byte from the scored tokens' own bytes (byte-level BPE)
    mine = tmp_path / "mine.txt"
    mine.write_bytes(b"\xef\xbb\xbf" + b"To be, or not to be, that is the question.\n" * 5)  # a BOM first: not text
    scored = score_texts([mine], chunks / f"chunks_{objective}", out / "model", tmp_path / "score.tsv",
                         objective=objective, name=objective, dataset="mine", block_size=BLOCK, seed=1)
    assert list(pd.read_csv(tmp_path / "score.tsv", sep="\t").columns) == SCORE_COLUMNS
    tok = load_tokenizer(out / "model")
    n_tokens = len(tok(mine.read_text(encoding="utf-8-sig"), add_special_tokens=False)["input_ids"])
    assert scored["tokens"] == n_tokens and scored["bytes"] == 43 * 5
    n_blocks = math.ceil(n_tokens / BLOCK)
    assert scored["eval_targets"] == (n_tokens - n_blocks if objective == "clm" else scored["eval_targets"])
    assert scored["bits_per_byte"] == pytest.approx(math.log2(scored["perplexity"]) * scored["eval_targets"]
                                                    / _scored_bytes(scored, out / "model", mine, objective), rel=1e-6) \
        if objective == "clm" else scored["bits_per_byte"] > 0
    assert 1 < scored["unigram_perplexity"] < vocab
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputError, match="no text to score"):
        score_texts([empty], chunks / f"chunks_{objective}", out / "model", tmp_path / "none.tsv",
                    objective=objective, name=objective, dataset="empty", block_size=BLOCK)
    assert not (tmp_path / "none.tsv").exists()
    combine_eval([tmp_path / "eval.tsv", tmp_path / "eval.tsv"], tmp_path / "all.tsv")
    assert len(pd.read_csv(tmp_path / "all.tsv", sep="\t")) == 2
    plot_loss_curves([out / "history.tsv"], [objective], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_unigram_and_mlm_targets(chunks):
    import datasets

    train = datasets.load_from_disk(str(chunks / "chunks_clm"))["train"]
    logp = unigram_logprobs(train, 300, alpha=0.5)
    assert logp.shape == (300,) and math.isclose(np.exp(logp).sum(), 1.0)
    ids = np.asarray(train.with_format("numpy")["input_ids"]).ravel()
    common = np.bincount(ids, minlength=300).argmax()
    assert logp.argmax() == common
    mask = mlm_targets(np.zeros((50, 8), np.int64), probability=0.01, seed=0)
    assert mask.any(axis=1).all()
    assert np.array_equal(mask, mlm_targets(np.zeros((50, 8), np.int64), probability=0.01, seed=0))


def _scored_bytes(row, model_dir, path, objective):
    """UTF-8 bytes of the tokens a causal LM scores in ``path``: all but the first of each block."""
    tok = load_tokenizer(model_dir)
    ids = tok(path.read_text(encoding="utf-8-sig"), add_special_tokens=False)["input_ids"]
    scored = [t for i in range(0, len(ids), BLOCK) for t in ids[i:i + BLOCK][1:]]
    return sum(len(t) for t in tok.convert_ids_to_tokens(scored))


def _garble(path, how):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"\x00garbled\x00" + data[10:])


@pytest.mark.parametrize("kind", ["model.safetensors", "optimizer.pt", "rng_state.pth", "scheduler.pt",
                                  "trainer_state.json"])
def test_an_unreadable_checkpoint_file_is_quarantined_and_the_previous_one_resumed(kind, trained_clm, tmp_path):
    import shutil

    from omicslm.textlm.train import last_complete_checkpoint

    work = tmp_path / "work"
    shutil.copytree(trained_clm / "work", work)
    assert last_complete_checkpoint(work).endswith("checkpoint-4")
    for how in ("truncate", "garble"):
        if not (work / "checkpoint-4").exists():
            shutil.copytree(trained_clm / "work" / "checkpoint-4", work / "checkpoint-4")
        _garble(work / "checkpoint-4" / kind, how)
        assert last_complete_checkpoint(work).endswith("checkpoint-2"), (kind, how)
        assert not (work / "checkpoint-4").exists()
    kept = sorted(p.name for p in (work / "quarantine").iterdir())
    assert len(kept) == 2 and all(k.startswith("checkpoint-4-") for k in kept)  # kept for a look, not deleted
    assert (work / "checkpoint-2").is_dir()  # the good one is untouched


@pytest.fixture(scope="module")
def trained_clm(chunks, tiny_tokenizers, tmp_path_factory):
    root = tmp_path_factory.mktemp("clm_run")
    train_lm(chunks / "chunks_clm", tiny_tokenizers / "clm", root / "lm", work_dir=root / "work", objective="clm",
             model=TINY["clm"], training=TRAIN, max_eval_blocks=4, name="clm")
    return root


def test_a_run_resumes_past_a_garbled_optimizer_state(trained_clm, chunks, tiny_tokenizers, tmp_path, caplog):
    import shutil

    work = tmp_path / "work"
    shutil.copytree(trained_clm / "work", work)
    _garble(work / "checkpoint-4" / "optimizer.pt", "garble")
    with caplog.at_level("WARNING"):
        out = train_lm(chunks / "chunks_clm", tiny_tokenizers / "clm", tmp_path / "lm", work_dir=work,
                       objective="clm", model=TINY["clm"], training={**TRAIN, "max_steps": 6}, max_eval_blocks=4,
                       name="clm")
    assert out["resumed_from"].endswith("checkpoint-2") and out["steps"] == 6  # not a failure on every rerun
    assert "optimizer.pt" in caplog.text and "quarantine" in caplog.text
