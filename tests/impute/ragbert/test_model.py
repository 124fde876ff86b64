import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omicslm.impute.ragbert.batches import TrainEpochs, WindowData, curriculum_reveal, panel_site_stats
from omicslm.impute.ragbert.model import (IGNORE, TOKEN_MASK, TOKEN_PAD, LossWeights, ModelConfig, RagBert, RareVariantFusion,
                                          focal_loss, model_loss)

N_VAR, N_SAMP, L, K = 40, 6, 16, 2


def _data(neighbours=True, seed=0):
    rng = np.random.default_rng(seed)
    hap = (rng.random((N_VAR, N_SAMP, 2)) < 0.3).astype(np.int8)
    pop = np.array([0, 0, 0, 1, 1, 1])
    stats = panel_site_stats(hap, pop, np.arange(N_SAMP), 2)
    windows = np.array([[0, 16], [12, 28], [24, 40], [30, 40]])  # the last one is short: padded
    observed = np.zeros(N_VAR, bool)
    observed[::4] = True
    qh = hap.reshape(N_VAR, -1)
    nb = rng.integers(0, 2 * N_SAMP, size=(len(windows), 2 * N_SAMP, K)) if neighbours else None
    return WindowData(windows=windows, window_sites=L, positions=np.arange(N_VAR) * 100 + 7, vtype=np.arange(N_VAR) % 12,
                      stats=stats, observed=observed, query_hap=qh, query_pop=pop, panel_hap=qh,
                      panel_pop=np.repeat(pop, 2), neighbours=nb), hap


def test_batch_shapes_masking_and_padding():
    data, hap = _data()
    pairs = np.array([[0, 1], [3, 4]])  # window 3 = sites 30..39, 10 sites + 6 pad
    b = data.batch(pairs)
    assert b["tokens"].shape == (4, L) and b["features"].shape == (4, L, 6) and b["ref_tokens"].shape == (4, K, L)
    assert b["ref_features"].shape == (4, K, L, 6) and b["af"].shape == (4, L, 2)
    tok, lab, sites = b["tokens"].numpy(), b["labels"].numpy(), b["sites"].numpy()
    # rows 0,1 = haplotypes 0/1 of sample 1 in window 0
    assert list(b["hap"].numpy()) == [2, 3, 8, 9]
    for r in range(4):
        for j in range(L):
            s = sites[r, j]
            if s < 0:
                assert tok[r, j] == TOKEN_PAD and lab[r, j] == IGNORE and b["attention_mask"][r, j] == 0
                continue
            true = hap[s, b["hap"][r] // 2, b["hap"][r] % 2]
            if s % 4 == 0:  # array site: shown, no loss
                assert tok[r, j] == true and lab[r, j] == IGNORE
            else:
                assert tok[r, j] == TOKEN_MASK and lab[r, j] == true
    assert (sites[2:, 10:] == -1).all() and (sites[2:, :10] == np.arange(30, 40)).all()
    # relative position: 0 at the first site, 1 at the window's last real site
    rel = b["features"][..., 5].numpy()
    assert rel[0, 0] == 0 and rel[0, 15] == pytest.approx(1.0) and rel[2, 9] == pytest.approx(1.0)
    # population AF feature is the item's own population's
    np.testing.assert_allclose(b["af"][2, :10, 1].numpy(), data.stats.af_pop[30:40, 1])


def test_curriculum_reveals_then_masks_like_targets():
    assert curriculum_reveal(0, reveal_start=0.4, curriculum_epochs=2) == pytest.approx(0.4)
    assert curriculum_reveal(1, reveal_start=0.4, curriculum_epochs=2) == pytest.approx(0.2)
    assert curriculum_reveal(5, reveal_start=0.4, curriculum_epochs=2) == 0.0
    data, _ = _data()
    epochs = TrainEpochs(data, batch_size=4, pairs_per_epoch=10, seed=1, reveal_start=0.9, curriculum_epochs=2)
    masked = [sum(int((b["tokens"] == TOKEN_MASK).sum()) for b in epochs(e)) for e in (0, 2)]
    assert masked[0] < masked[1] / 3
    # deterministic per epoch (resume relies on it)
    a = [b["tokens"] for b in epochs(1)]
    c = [b["tokens"] for b in epochs(1)]
    assert all(torch.equal(x, y) for x, y in zip(a, c)) and epochs.steps_per_epoch() == len(a) == 5


def test_site_stats_come_only_from_panel_samples():
    rng = np.random.default_rng(1)
    hap = (rng.random((10, 8, 2)) < 0.5).astype(np.int8)
    pop = np.array([0, 1] * 4)
    panel = np.array([0, 1, 2, 3])
    before = panel_site_stats(hap, pop, panel, 2)
    hap[:, 4:] = 1 - hap[:, 4:]  # change the non-panel (query) samples only
    after = panel_site_stats(hap, pop, panel, 2)
    for a, b in zip((before.af, before.af_pop, before.geno_freq), (after.af, after.af_pop, after.geno_freq)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(before.af, hap[:, :4].mean(axis=(1, 2)))
    np.testing.assert_allclose(before.geno_freq.sum(1), 1)


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_down_weights_easy_sites():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 2) * 3
    labels = torch.randint(0, 2, (3, 5))
    labels[0, :2] = IGNORE
    ce = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), ignore_index=IGNORE)
    assert focal_loss(logits, labels, 0.0).item() == pytest.approx(ce.item(), rel=1e-6)
    assert focal_loss(logits, labels, 2.0).item() < ce.item()
    assert focal_loss(logits, torch.full_like(labels, IGNORE), 2.0).item() == 0.0


@pytest.mark.parametrize("retrieval,pooling", [(True, "attention"), (True, "mean"), (False, "attention")])
def test_model_variants_forward_backward(retrieval, pooling):
    torch.manual_seed(0)
    data, _ = _data(neighbours=retrieval)
    batch = data.batch(np.array([[0, 0], [1, 2], [3, 5]]))
    model = RagBert(ModelConfig(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2,
                                intermediate=32, retrieval=retrieval, pooling=pooling, k=K, ref_chunk=5))
    out = model(batch)
    assert out["allele_logits"].shape == (6, L, 2) and out["genotype_logits"].shape == (3, L, 3)
    loss, logs = model_loss(out, batch["labels"], LossWeights(focal_gamma=1.0))
    loss.backward()
    assert torch.isfinite(loss) and set(logs) == {"allele_loss", "recon_mse", "genotype_loss"}
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert (model.fusion is None) == (not retrieval)


def test_reference_encoding_gradient_modes_agree():
    torch.manual_seed(0)
    data, _ = _data()
    batch = data.batch(np.array([[0, 0], [2, 3]]))
    cfg = dict(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32, k=K, ref_chunk=3,
               dropout=0.0)
    a = RagBert(ModelConfig(**cfg, ref_grad=True, ref_checkpointing=True))
    b = RagBert(ModelConfig(**cfg, ref_grad=True, ref_checkpointing=False))
    b.load_state_dict(a.state_dict())
    outs = []
    for m in (a, b):
        m.train()
        loss, _ = model_loss(m(batch), batch["labels"], LossWeights())
        loss.backward()
        outs.append(m.encoder.embeddings.LayerNorm.weight.grad.clone())
    torch.testing.assert_close(outs[0], outs[1])  # checkpointing changes memory, not the gradient


def test_a_reference_retrieved_twice_is_encoded_once_with_the_same_result():
    torch.manual_seed(0)
    data, _ = _data()
    # queries 0..3 of window 0 retrieving overlapping panel haplotypes: rows repeat within the batch
    data.neighbours[0, :4] = [[1, 2], [2, 1], [1, 5], [5, 2]]
    batch = data.batch(np.array([[0, 0], [0, 1]]))
    m = RagBert(ModelConfig(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32, k=K,
                            ref_chunk=3, dropout=0.0, ref_grad=False)).eval()
    calls = []
    m.encode = (lambda f: lambda *a, **kw: calls.append(a[0].shape[0]) or f(*a, **kw))(m.encode)
    with torch.no_grad():
        deduped = m.encode_refs(batch)
        rows = batch["ref_tokens"].shape[0] * K
        each = torch.stack([m.encode(batch["ref_tokens"][i // K, i % K][None], batch["ref_features"][i // K, i % K][None],
                                     batch["vtype"][i // K][None], batch["ref_pop"][i // K, i % K][None],
                                     batch["attention_mask"][i // K][None])[0] for i in range(rows)])
    assert sum(calls[:-rows]) == 3  # panel haplotypes 1, 2 and 5 of window 0: three encodings, not eight
    torch.testing.assert_close(deduped.reshape(rows, L, -1), each, atol=1e-5, rtol=1e-5)


def test_missing_retrieved_haplotypes_and_bad_pooling_are_errors():
    data, _ = _data(neighbours=False)
    model = RagBert(ModelConfig(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32))
    with pytest.raises(ValueError, match="no retrieved haplotypes"):
        model(data.batch(np.array([[0, 0]])))
    with pytest.raises(ValueError, match="pooling"):
        RareVariantFusion(8, pooling="max", max_inv_maf=10, residual_scale=0.1)
    with pytest.raises(ValueError, match="unknown model config key"):
        ModelConfig.from_dict({"window_sites": 4, "n_types": 12, "n_pops": 1, "hiden": 3})


def test_fusion_inverse_maf_scale_is_clamped():
    torch.manual_seed(0)
    fusion = RareVariantFusion(8, pooling="mean", max_inv_maf=10.0, residual_scale=1.0)
    fusion.norm = torch.nn.Identity()  # look at the residual itself
    own = torch.zeros(1, 3, 8)
    refs = torch.randn(1, 2, 3, 8)
    af = torch.full((1, 3, 2), 0.3)
    fused = fusion.fuse(torch.cat([own, (refs * torch.sigmoid(fusion.af_adapter(
        torch.cat([af[..., :1], af[..., 1:], af[..., :1] * af[..., 1:]], -1))).unsqueeze(1)).mean(1)], -1))
    out = fusion(own, refs, af, torch.tensor([[0.0, 0.05, 0.5]]))
    torch.testing.assert_close(out[0, 0], 10.0 * fused[0, 0])  # MAF 0 -> clamped at 10
    torch.testing.assert_close(out[0, 1], 10.0 * fused[0, 1])  # 1/0.05 = 20 -> 10
    torch.testing.assert_close(out[0, 2], 2.0 * fused[0, 2])


def test_retrieved_vote_enters_the_query_input_and_follows_the_retrieved_alleles():
    torch.manual_seed(0)
    data, _ = _data()
    batch = data.batch(np.array([[0, 0], [1, 2]]))
    model = RagBert(ModelConfig(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32,
                                k=K, retrieved_vote=True, dropout=0.0)).eval()
    assert model.vote_proj is not None
    assert RagBert(ModelConfig(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32,
                               retrieval=False, retrieved_vote=True)).vote_proj is None  # ablation stays plain BERT
    with torch.no_grad():
        base = model(batch)["allele_logits"]
        flipped = dict(batch)
        ref = batch["ref_tokens"]
        flipped["ref_tokens"] = torch.where(ref < 2, 1 - ref, ref)  # every retrieved allele swapped
        # The fused retrieval path sees the swap too; switch it off to isolate the vote input.
        model.fusion.residual_scale = 0.0
        a = model(batch)["allele_logits"]
        b = model(flipped)["allele_logits"]
    assert not torch.allclose(a, b)  # the vote alone changes the prediction
    assert base.shape == a.shape
    loss, _ = model_loss(model.train()(batch), batch["labels"], LossWeights())
    loss.backward()
    assert model.vote_proj.weight.grad is not None and torch.isfinite(model.vote_proj.weight.grad).all()


def test_copying_prior_enters_the_input_and_the_allele_log_odds():
    torch.manual_seed(0)
    data, _ = _data()
    p = np.random.default_rng(1).random(data.query_hap.shape).astype(np.float32)
    data.copy_prob = p
    batch = data.batch(np.array([[0, 0], [3, 2]]))
    cp = batch["copy_prob"].numpy()
    sites, hap = batch["sites"].numpy(), batch["hap"].numpy()
    assert cp.shape == (4, L)
    for r in range(4):
        for j in range(L):
            assert cp[r, j] == (p[sites[r, j], hap[r]] if sites[r, j] >= 0 else 0.5)
    cfg = dict(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32, k=K, dropout=0.0)
    model = RagBert(ModelConfig(**cfg, copying=True, copy_prior_clip=1e-3)).eval()
    assert model.copy_proj is not None and model.copy_scale.item() == 1.0
    assert RagBert(ModelConfig(**{**cfg, "retrieval": False}, copying=True)).copy_proj is None  # plain-BERT ablation
    with torch.no_grad():
        torch.nn.init.zeros_(model.allele_head.weight)
        torch.nn.init.zeros_(model.allele_head.bias)
        logits = model(batch)["allele_logits"]
        # a silent head leaves exactly the copying model's (clipped) log-odds
        want = torch.logit(batch["copy_prob"].clamp(1e-3, 1 - 1e-3))
        torch.testing.assert_close(logits[..., 1] - logits[..., 0], want)
        with pytest.raises(ValueError, match="no copy_prob"):
            model({k: v for k, v in batch.items() if k != "copy_prob"})


def test_cpu_bf16_inference_is_close_to_fp32_and_falls_back_without_native_bf16(monkeypatch, caplog):
    from omicslm.impute.ragbert.predict import predict_alt_prob
    from omicslm.train import device as dev_mod

    torch.manual_seed(0)
    data, _ = _data()
    m = RagBert(ModelConfig(window_sites=L, n_types=12, n_pops=2, hidden=16, layers=1, heads=2, intermediate=32, k=K,
                            dropout=0.0))
    cpu = torch.device("cpu")
    fp32 = predict_alt_prob(m, data, batch_size=4, device=cpu)
    assert np.isfinite(fp32).all() and ((fp32 >= 0) & (fp32 <= 1)).all()
    monkeypatch.setattr(dev_mod, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        same = predict_alt_prob(m, data, batch_size=4, device=cpu, cpu_bf16=True)
    assert "no native bf16" in caplog.text
    np.testing.assert_array_equal(same, fp32)  # fell back to fp32: bit for bit
    monkeypatch.setattr(dev_mod, "cpu_has_native_bf16", lambda: True)  # emulated where the CPU lacks it: still bf16
    bf16 = predict_alt_prob(m, data, batch_size=4, device=cpu, cpu_bf16=True)
    assert not np.array_equal(bf16, fp32)  # it really ran in bf16 ...
    np.testing.assert_allclose(bf16, fp32, atol=0.03)  # ... and agrees to bf16's 8-bit mantissa
