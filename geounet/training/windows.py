"""Training windows read from disk: a ``torch.utils.data`` dataset and its sampler.

Sample ``i`` of a run is fixed by ``(seed, i)`` alone: a generator
``numpy.random.default_rng((seed, i))`` picks the scene (with probability
proportional to its weight, :func:`geounet.training.scenes.set_weights`) and
the window's origin (uniform, outside the scene's validation window when one
fits, :func:`geounet.training.sampling.sample_origin`). So a run gives the same
windows with any number of worker processes, after ``--resume``, and, sharded
by rank, under ``torchrun``. Each worker opens the scenes it reads itself
(rasterio datasets are not shared between processes) and reads only the
window (:func:`geounet.io.padding.read_scaled`, the inference path's read:
reflected past the scene's edge, on the training grid); labels are burned for
the window alone (:meth:`geounet.training.scenes.TrainScene.labels`). Memory is
one batch per worker, whatever the number and size of the scenes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from rasterio.windows import Window

from geounet.constants import CLASS_NODATA
from geounet.io.padding import read_scaled
from geounet.io.read import BandScaler, Scene
from geounet.training.sampling import sample_origin
from geounet.training.scenes import TrainScene


class WindowDataset(torch.utils.data.Dataset):
    """Training windows of several scenes, indexed by sample number.

    Args:
        scenes: The run's scenes (only those with ``weight > 0`` are sampled).
        scaler: Input scaler (the band statistics of the run).
        fill: Value of unlabelled pixels (0, or ``CLASS_NODATA`` for sparse labels).
        tile: Window size (px of the training grid).
        seed: The run's seed.

    Item ``i``: ``(x, y)``, ``(c, tile, tile)`` float32 scaled input and
    ``(tile, tile)`` int64 class ids (``CLASS_NODATA``: not trained on; nodata,
    past the edge, validation pixels).
    """

    def __init__(self, scenes: list[TrainScene], scaler: BandScaler, fill: int, tile: int,
                 seed: int) -> None:
        self.scenes, self.scaler, self.fill, self.tile, self.seed = (
            scenes, scaler, fill, tile, seed)
        weights = np.array([max(s.weight, 0.0) for s in scenes], np.float64)
        self.cum = np.cumsum(weights / weights.sum())
        self._open: dict[int, Scene] = {}

    def __len__(self) -> int:
        return 2**62  # indexed by sample number, never exhausted

    def window(self, i: int) -> tuple[TrainScene, Window]:
        """Scene and window of sample ``i`` (see the module docstring)."""
        rng = np.random.default_rng((self.seed, i))
        k = min(int(np.searchsorted(self.cum, rng.random(), side="right")), len(self.cum) - 1)
        ts = self.scenes[k]
        r0, c0 = sample_origin(rng, ts.width, ts.height, self.tile, ts.val_window)
        return ts, Window(c0, r0, self.tile, self.tile)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ts, win = self.window(int(i))
        if ts.index not in self._open:
            self._open[ts.index] = ts.open()
        x, valid = read_scaled(self._open[ts.index], win, self.scaler)
        y = ts.labels(win, self.fill, train=True)
        y[~valid] = CLASS_NODATA
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def close(self) -> None:
        """Close the scenes this process opened."""
        for sc in self._open.values():
            sc.close()
        self._open.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = {}  # a worker opens its own
        return state


class StepSampler(torch.utils.data.Sampler):
    """Sample numbers of one epoch's steps, for one rank.

    Step ``s`` (0-based over the run) of rank ``r`` of ``world`` takes the
    numbers ``(s * world + r) * batch + j``, ``j < batch``: disjoint shards,
    and the same numbers whether the run was resumed or not.

    Args:
        batch: Tiles per step per rank.
        steps: Steps per epoch.
        rank: This process's rank.
        world: Number of processes.

    Attributes:
        epoch: 1-based epoch whose numbers :meth:`__iter__` gives; set it
            before each epoch.
    """

    def __init__(self, batch: int, steps: int, rank: int = 0, world: int = 1) -> None:
        self.batch, self.steps, self.rank, self.world = batch, steps, rank, world
        self.epoch = 1

    def __len__(self) -> int:
        return self.batch * self.steps

    def __iter__(self) -> Iterator[int]:
        first = (self.epoch - 1) * self.steps
        for s in range(first, first + self.steps):
            base = (s * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)


def make_loader(dataset: WindowDataset, sampler: StepSampler, workers: int,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """The ``DataLoader`` of the training windows.

    Args:
        dataset: The windows.
        sampler: Their numbers.
        workers: Worker processes (0: read in this process).
        pin_memory: Pin batches (CUDA).

    Returns:
        A loader of ``(x, y)`` batches, ``(b, c, t, t)`` float32 and ``(b, t, t)`` int64.
        Its shuffling generator is its own, so it never draws from torch's
        global generator (which the augmentation uses).
    """
    return torch.utils.data.DataLoader(
        dataset, batch_size=sampler.batch, sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(dataset.seed),
        prefetch_factor=2 if workers > 0 else None)
