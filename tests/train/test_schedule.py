import math

import pytest

from omicslm.train.schedule import lr_lambda


def test_warmup_is_linear_from_zero_to_one():
    kw = dict(warmup_steps=10, total_steps=100)
    assert [lr_lambda(s, **kw) for s in (0, 1, 5, 10)] == pytest.approx([0.0, 0.1, 0.5, 1.0])


def test_cosine_endpoints_midpoint_and_floor():
    kw = dict(warmup_steps=10, total_steps=110, schedule="cosine", min_lr_ratio=0.1)
    assert lr_lambda(10, **kw) == pytest.approx(1.0)
    assert lr_lambda(60, **kw) == pytest.approx(0.1 + 0.9 * 0.5)          # half way: cos(pi/2) = 0
    assert lr_lambda(110, **kw) == pytest.approx(0.1)
    assert lr_lambda(500, **kw) == pytest.approx(0.1)                      # flat after total_steps
    values = [lr_lambda(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))                 # monotone decay
    assert min(values) >= 0.1


def test_linear_decay_and_constant():
    kw = dict(warmup_steps=0, total_steps=100)
    assert lr_lambda(25, schedule="linear", **kw) == pytest.approx(0.75)
    assert lr_lambda(100, schedule="linear", min_lr_ratio=0.2, **kw) == pytest.approx(0.2)
    assert {lr_lambda(s, schedule="constant", **kw) for s in (0, 50, 100, 1000)} == {1.0}
    assert lr_lambda(3, schedule="constant", warmup_steps=4, total_steps=10) == pytest.approx(0.75)


def test_hold_keeps_peak_before_decay():
    kw = dict(warmup_steps=5, hold_steps=10, total_steps=25, schedule="cosine")
    assert lr_lambda(14, **kw) == 1.0
    assert lr_lambda(20, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_lambda(0, warmup_steps=1, total_steps=2, schedule="step")
    with pytest.raises(ValueError, match="min_lr_ratio"):
        lr_lambda(0, warmup_steps=1, total_steps=2, min_lr_ratio=1.5)
