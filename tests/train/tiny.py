"""A tiny regression task shared by the training tests: y = X w + noise, MLP with dropout.

Dropout makes the loss depend on the torch generator, so an exact-resume test also
checks that the generator state is restored.
"""

from __future__ import annotations

import torch

N_SAMPLES, N_FEATURES, HIDDEN, BATCH = 128, 6, 16, 16  # -> 8 batches per epoch


def make_data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_SAMPLES, N_FEATURES, generator=g)
    w = torch.randn(N_FEATURES, 1, generator=g)
    y = x @ w + 0.05 * torch.randn(N_SAMPLES, 1, generator=g)
    return x, y


def make_model(seed: int = 0, hidden: int = HIDDEN) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(N_FEATURES, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                               torch.nn.Linear(hidden, 1))


def make_task(x, y, *, fail_at_call: int | None = None, delay: float = 0.0):
    """Return (train_batches, loss_fn, validate, calls) for fit; ``calls[0]`` counts loss_fn calls.

    ``fail_at_call``: raise KeyboardInterrupt on that (1-based) loss_fn call, as a kill would.
    """
    import time

    calls = [0]
    x_val, y_val = x[:32], y[:32]

    def train_batches(epoch):
        order = torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(100 + epoch))
        return [(x[order[i:i + BATCH]], y[order[i:i + BATCH]]) for i in range(0, N_SAMPLES, BATCH)]

    def loss_fn(model, batch, epoch):
        calls[0] += 1
        if fail_at_call is not None and calls[0] == fail_at_call:
            raise KeyboardInterrupt(f"simulated kill at call {calls[0]}")
        if delay:
            time.sleep(delay)
        xb, yb = batch
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        return loss, {"mse": loss.item()}

    def validate(model, epoch):
        pred = model(x_val)
        mse = torch.nn.functional.mse_loss(pred, y_val).item()
        r2 = 1.0 - mse / y_val.var(unbiased=False).item()
        return {"val_loss": mse, "val_r2": r2}

    return train_batches, loss_fn, validate, calls
