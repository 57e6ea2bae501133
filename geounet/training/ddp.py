"""Data-parallel training with torch ``DistributedDataParallel``, launched by ``torchrun``.

``torchrun --nproc-per-node N -m geounet train ...`` starts ``N`` processes
with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; :func:`setup` joins them
into one process group (``nccl`` on CUDA, ``gloo`` on the CPU), each on its own
GPU (``cuda:LOCAL_RANK``). Every process draws its own shard of the windows
(:class:`geounet.training.windows.StepSampler`), DDP averages the gradients,
so ``--batch-size`` is per process and a step sees ``N`` times as many tiles.
Rank 0 alone validates, writes the checkpoints, the records and the model
file; the others wait for it at a barrier. Without ``WORLD_SIZE`` (or with 1)
nothing here does anything.

Source: PyTorch, "Getting Started with Distributed Data Parallel"
(https://pytorch.org/tutorials/intermediate/ddp_tutorial.html) and the
``torchrun`` documentation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)  # torch is imported where it is used: geounet train says
# that torch is missing in one line (geounet.training imports this module)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a data-parallel run.

    Attributes:
        rank: Global rank (0 writes the outputs).
        world: Number of processes.
        local_rank: Rank on this machine (its GPU index).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on the process that validates and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when there are several processes."""
        return self.world > 1


def from_environment() -> DistEnv:
    """The ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    return DistEnv(int(os.environ.get("RANK", "0")), world,
                   int(os.environ.get("LOCAL_RANK", "0")))


def setup(env: DistEnv, device: Any) -> Any:
    """Join the process group and choose this process's device.

    Args:
        env: From :func:`from_environment`.
        device: The device asked for (``torch.device``).

    Returns:
        The device to train on (``cuda:LOCAL_RANK`` on CUDA).
    """
    if not env.distributed:
        return device
    import torch
    import torch.distributed as dist

    cuda = torch.device(device).type == "cuda"
    if cuda:
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    log.info("data-parallel rank %d of %d on %s", env.rank, env.world, device)
    return device


def wrap(model: Any, env: DistEnv, device: Any) -> Any:
    """``DistributedDataParallel(model)`` in a distributed run, else ``model``."""
    if not env.distributed:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if torch.device(device).type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: Any) -> Any:
    """The module inside a DDP wrapper (or ``model``)."""
    return getattr(model, "module", model)


def mean_over_ranks(values: list[float], env: DistEnv) -> list[float]:
    """Mean of each value over the processes (the values themselves with one)."""
    if not env.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return (t / env.world).tolist()


def barrier(env: DistEnv) -> None:
    """Wait for every process (nothing with one)."""
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def teardown(env: DistEnv) -> None:
    """Leave the process group."""
    if env.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
