"""Data-parallel training under ``torchrun``: one process per GPU (NCCL) or per CPU slot (gloo).

``torchrun --nproc-per-node N`` starts N copies of a job and gives each ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in its environment (:mod:`omicslm.train.launch` starts
it from a rule). Every rank builds the same data and model; :func:`omicslm.train.fit` then,
through :class:`DataParallel`,

* runs ``loss_fn`` inside a ``DistributedDataParallel`` module, which averages gradients
  across ranks during ``backward`` (with gradient accumulation only on a group's last batch),
* gives each rank its contiguous slice of every global batch (:func:`shard_rows`), so the
  batch per optimizer step, the lr schedule and the step count stay those of one process,
  and scales each rank's loss by ``world * (its rows / all rows)``, so the averaged gradient
  equals the one-process gradient of a per-row mean loss even when rows do not divide evenly
  (a loss averaged over tokens, such as masked-LM cross-entropy, is weighted by rows, not
  tokens: close to, not exactly, the one-process gradient),
* sums the train loss over ranks and gives every rank rank 0's validation metrics, so all
  ranks make the same early-stopping decision,
* writes checkpoints, TensorBoard and history on rank 0 only; a branch writes its own
  outputs only where :func:`is_main_process` is true.

Validation runs on every rank (each on its own copy of the weights; only rank 0's numbers
are used): the other ranks would otherwise wait inside a collective for the whole
validation, which a long one turns into an NCCL timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Callable

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def world_size() -> int:
    """Processes in this training job: ``WORLD_SIZE`` set by torchrun, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank in the job (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True for the one process (rank 0) that writes checkpoints and outputs."""
    return rank() == 0


def _rows(batch: Any) -> int | None:
    """Leading size of the first tensor (depth first) in a nested batch."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for v in values:
        n = _rows(v)
        if n is not None:
            return n
    return None


def _slice(batch: Any, n: int, lo: int, hi: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[lo:hi] if batch.dim() and batch.shape[0] == n else batch
    if isinstance(batch, dict):
        return type(batch)((k, _slice(v, n, lo, hi)) for k, v in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_slice(v, n, lo, hi) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(_slice(v, n, lo, hi) for v in batch)
    return batch


def shard_rows(batch: Any, rank: int, world: int, *, multiple: int = 1) -> tuple[Any, float]:
    """This rank's contiguous rows of a global batch, and its share of the rows.

    Parameters
    ----------
    batch : tensor or nested dict / list / tuple / namedtuple of tensors
        Every tensor whose first dimension has the batch's row count (that of the first
        tensor found) is cut along it; other values pass unchanged.
    rank, world : int
        This process and the number of processes.
    multiple : int
        Rows are handed out in groups of this many that stay on one rank (2 for the two
        haplotypes of a sample).

    Returns
    -------
    local : same structure as ``batch``
        Rows ``[lo, hi)`` of every row tensor. A rank left without rows (batch smaller than
        ``world`` groups) gets the first group with share 0: it must still run forward and
        backward, since every rank joins each gradient reduction, but adds nothing.
    share : float
        ``(hi - lo) / rows``; the shares of all ranks sum to 1.
    """
    n = _rows(batch)
    if n is None:
        raise ValueError("cannot shard a batch that holds no tensor with a batch dimension")
    groups = -(-n // multiple)
    lo = min(n, groups * rank // world * multiple)
    hi = min(n, groups * (rank + 1) // world * multiple)
    share = (hi - lo) / n
    if hi == lo:
        lo, hi = 0, min(n, multiple)
    return _slice(batch, n, lo, hi), share


class _LossModule(torch.nn.Module):
    """``loss_fn(model, batch, epoch)`` as a module's forward.

    DDP prepares its gradient reduction in its own ``forward``; running the whole loss
    inside it lets ``loss_fn`` keep the plain model (and call e.g. ``model.bert`` directly).
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any, epoch: int):
        return self.loss_fn(self.model, batch, epoch)


class NullWriter:
    """Stands in for TensorBoard's ``SummaryWriter`` on ranks that write nothing."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class DataParallel:
    """The process group of a torchrun job and the collectives :func:`omicslm.train.fit` needs.

    Parameters
    ----------
    device : torch.device
        This rank's device (``cuda:LOCAL_RANK`` from :func:`omicslm.train.device.pick_device`);
        NCCL on CUDA, gloo on CPU.
    shard : callable, optional
        ``(batch, rank, world) -> (local batch, share)``; default :func:`shard_rows`.
    """

    def __init__(self, device: torch.device, shard: Callable[[Any, int, int], tuple[Any, float]] | None = None):
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.rank, self.world = rank(), world_size()
        self.main = self.rank == 0
        self._shard = shard or shard_rows
        self._owns_group = not dist.is_initialized()
        if self._owns_group:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        log.info("data parallel: rank %d of %d on %s (%s)", self.rank, self.world, device, dist.get_backend())

    @classmethod
    def start(cls, device: torch.device, shard=None) -> "DataParallel | None":
        """A :class:`DataParallel` under torchrun with more than one process, else None."""
        return cls(device, shard) if world_size() > 1 else None

    def wrap(self, model: torch.nn.Module, loss_fn: Callable) -> torch.nn.Module:
        """``DistributedDataParallel`` over ``loss_fn(model, batch, epoch)``; call it as ``m(batch, epoch)``."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device] if self.device.type == "cuda" else None
        # A step may leave trainable parameters without a gradient (a loss term weighted 0, a head
        # the loss skips for an odd-sized batch); without this DDP waits for them and fails.
        return DistributedDataParallel(_LossModule(model, loss_fn), device_ids=ids, find_unused_parameters=True)

    def shard(self, batch: Any) -> tuple[Any, float]:
        """This rank's rows of ``batch`` and the loss weight ``world * share``."""
        local, share = self._shard(batch, self.rank, self.world)
        return local, self.world * share

    def no_sync(self, ddp_model: torch.nn.Module, skip: bool):
        """``ddp_model.no_sync()`` when ``skip`` (accumulate locally), else a no-op context."""
        return ddp_model.no_sync() if skip else contextlib.nullcontext()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over ranks (sum, then divide: gloo has no AVG)."""
        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value / self.world

    def average_gradients(self, params) -> None:
        """Average ``.grad`` over ranks by hand (for a group whose backward skipped DDP's sync)."""
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects, e.g. a metrics dict)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here (e.g. until rank 0 has written a checkpoint)."""
        dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        """Leave the process group when :class:`DataParallel` created it."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
