import math

import numpy as np
import pytest
import torch

from omicslm.scrna.model import (IGNORE, CellTransformer, CountHead, ModelConfig, clip_loss, masked_count_nll,
                                 training_loss)


@pytest.mark.parametrize("kind", ["ce", "ordinal", "gaussian"])
def test_every_head_gives_a_distribution_over_the_bins(kind):
    torch.manual_seed(0)
    head = CountHead(kind, 8, 12)
    lp = head(torch.randn(5, 8) * 3)
    assert lp.shape == (5, 12) and lp.dtype == torch.float32
    torch.testing.assert_close(lp.logsumexp(1), torch.zeros(5), atol=1e-5, rtol=0)


def test_ordinal_head_is_a_cumulative_link_model():
    torch.manual_seed(0)
    head = CountHead("ordinal", 4, 6)
    head.cut_gaps.data.uniform_(-2.0, 2.0)
    h = torch.randn(3, 4)
    score = head.out(h)
    gaps = torch.nn.functional.softplus(head.cut_gaps)
    cuts = head.first_cut + torch.cat([torch.zeros(1), gaps.cumsum(0)])
    cdf = torch.cat([torch.sigmoid(cuts - score), torch.ones(3, 1)], dim=1)   # P(bin <= k)
    direct = torch.diff(cdf, dim=1, prepend=torch.zeros(3, 1))
    torch.testing.assert_close(head(h).exp(), direct, atol=1e-6, rtol=1e-5)
    # a higher score moves probability mass to higher bins (the order is built in)
    means = [(head._ordinal(torch.full((1, 1), s)).exp() * torch.arange(6.0)).sum() for s in (-3.0, 0.0, 3.0)]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("kind", ["ce", "ordinal", "gaussian"])
def test_marginal_initialisation_starts_at_the_training_distribution(kind):
    freq = np.array([50.0, 30.0, 12.0, 5.0, 2.0, 1.0])
    head = CountHead(kind, 8, 6)
    head.init_from_marginal(freq)
    with torch.no_grad():
        before = float(-(head(torch.zeros(1, 8)) * torch.tensor(freq / freq.sum())).sum())
    entropy = float(-(freq / freq.sum() * np.log(freq / freq.sum())).sum())
    assert before < math.log(6)              # better than uniform from the first step
    if kind != "gaussian":                   # ce and ordinal reproduce any distribution exactly
        assert before == pytest.approx(entropy, abs=1e-3)


def _batch(n_cells=4, seq=6, n_bins=5, vocab=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    genes = torch.randint(1, vocab, (2 * n_cells, seq), generator=g)
    genes[:, -1] = 0                                            # one padding position per row
    values = torch.randint(0, n_bins, genes.shape, generator=g)
    labels = torch.full(genes.shape, IGNORE)
    labels[:, 0] = values[:, 0]
    values[:, 0] = n_bins                                       # masked
    values[:, -1] = n_bins + 1                                  # padding
    return {"genes": genes, "values": values, "labels": labels}


def test_masked_loss_scores_only_masked_positions_and_padding_is_ignored():
    torch.manual_seed(0)
    model = CellTransformer(ModelConfig(vocab_size=10, n_bins=5, d_model=16, heads=2, ffn=32, layers=1, proj_dim=8))
    model.eval()
    batch = _batch()
    hidden = model(batch["genes"], batch["values"])
    nll, lp, targets = masked_count_nll(model, hidden, batch["labels"])
    assert lp.shape == (8, 5) and torch.equal(targets, batch["labels"][:, 0])
    # changing the gene at a padding position does not change any other position's output
    other = dict(batch, genes=batch["genes"].clone())
    other["genes"][:, -1] = 0
    other["values"] = batch["values"].clone()
    torch.testing.assert_close(model(other["genes"], other["values"])[:, :-1], hidden[:, :-1])
    loss, logs = training_loss(model, batch, clip_weight=0.5, temperature=0.1)
    assert logs["clip_chance"] == pytest.approx(math.log(4))
    assert float(loss.detach()) == pytest.approx(logs["masked_nll"] + 0.5 * logs["clip"], rel=1e-5)
    loss0, logs0 = training_loss(model, batch, clip_weight=0.0, temperature=0.1)
    assert "clip" not in logs0 and float(loss0.detach()) == pytest.approx(float(nll.detach()), rel=1e-5)


def test_clip_loss_pulls_matching_views_together():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    matched = clip_loss(z, z + 0.01 * torch.randn(8, 16), 0.1)
    shuffled = clip_loss(z, z[torch.randperm(8)], 0.1)
    assert float(matched) < 0.01 < math.log(8) < float(shuffled)
