"""Frame-budget batching, per-epoch shuffling, distributed sharding and resumable loaders.

:class:`FrameBatchSampler` packs utterances of similar length into batches whose padded size
(longest clip x batch size) stays within a frame budget per device, like ``frames_per_gpu`` of
the official recipes. :class:`BatchLoader` runs one :class:`~unisr.dataset.AVDataset` through it
and yields padded :class:`~unisr.dataset.Batch` objects; :class:`TrainIterator` pairs an
unlabelled loader with a cycling labelled one for semi-supervised training.

Bad samples are dropped from their batch, warned about once per file, and counted per epoch. A
batch whose every sample was bad comes out as ``None`` (so every rank still takes the same
number of steps; the training step skips that part).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .dataset import AVDataset, BadSample, Batch, DataConfig, collate
from .errors import UnisrError

log = logging.getLogger("unisr.data")


def _dist_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class FrameBatchSampler(torch.utils.data.Sampler):
    """Index batches with ``max(len) * len(batch) <= max_frames``.

    Per epoch (seeded by ``seed`` and the epoch): shuffle, stable-sort by length (ties stay
    shuffled), pack greedily, shuffle the batch order, keep a multiple of the world size and
    deal the batches round-robin, so ranks get disjoint shares of equal length. Utterances
    longer than the budget can never fit and are left out (counted in ``too_long``).
    ``state_dict``/``load_state_dict`` resume in the middle of an epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        if max_frames <= 0:
            raise UnisrError(f"frame budget must be positive, got {max_frames}")
        world, this_rank = _dist_world()
        self.num_replicas = world if num_replicas is None else num_replicas
        self.rank = this_rank if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise UnisrError(f"rank {self.rank} outside a world of {self.num_replicas}")
        self.lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
        self.max_frames, self.shuffle, self.seed = max_frames, shuffle, seed
        self.too_long = np.flatnonzero(self.lengths > max_frames)
        self.epoch = 0
        self._start = 0  # batches to skip at the next __iter__ (resume)
        self._yielded = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._start = epoch, 0

    def all_batches(self, epoch: int) -> list[list[int]]:
        """Every rank's batches of ``epoch``, before dealing (the global order)."""
        rng = np.random.default_rng([self.seed, epoch])
        index = np.flatnonzero(self.lengths <= self.max_frames)
        if self.shuffle:
            index = rng.permutation(index)
        index = index[np.argsort(self.lengths[index], kind="stable")]
        batches, current, longest = [], [], 0
        for i in index.tolist():
            length = int(self.lengths[i])
            if current and max(longest, length) * (len(current) + 1) > self.max_frames:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, length)
        if current:
            batches.append(current)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            batches = self.all_batches(epoch)
            usable = len(batches) - len(batches) % self.num_replicas
            self._cache = (epoch, batches[:usable][self.rank :: self.num_replicas])
        return self._cache[1]

    def __len__(self) -> int:
        return len(self.batches()) - self._start

    def __iter__(self) -> Iterator[list[int]]:
        batches, start = self.batches(), self._start
        self._start = 0
        for i in range(start, len(batches)):
            self._yielded = i + 1
            yield batches[i]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise UnisrError(f"sampler state has seed {state['seed']}, this run {self.seed}")
        self.epoch, self._start = int(state["epoch"]), int(state["batch"])
        self._yielded = self._start


class BatchLoader:
    """Batches of one dataset: a DataLoader with a :class:`FrameBatchSampler` and :func:`collate`.

    Yields :class:`~unisr.dataset.Batch` objects (``None`` when every sample of a batch was bad).
    Bad samples are logged
    once per file (``unisr.data`` logger) and summarised at the end of each epoch; ``bad`` holds
    every one seen, ``epoch_bad`` those of the current epoch.
    """

    def __init__(
        self,
        dataset: AVDataset,
        sampler: FrameBatchSampler,
        workers: int = 0,
        pin_memory: bool = False,
        name: str = "data",
    ):
        self.dataset, self.sampler, self.name = dataset, sampler, name
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=pin_memory,
        )
        self.bad: dict[str, BadSample] = {}
        self.epoch_bad: list[BadSample] = []
        self._consumed = 0
        if len(sampler.too_long):
            log.warning(
                "%s: %d utterance(s) longer than the %d-frame budget are left out",
                name,
                len(sampler.too_long),
                sampler.max_frames,
            )

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.sampler.epoch:
            self._consumed = 0
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Batch | None]:
        self.dataset.set_epoch(self.sampler.epoch)
        self._consumed = self.sampler._start
        self.epoch_bad = []
        for batch, bad_samples in self.loader:
            self._consumed += 1
            for bad in bad_samples:
                self._record(bad)
            yield batch
        self._report()

    def _record(self, bad: BadSample) -> None:
        self.epoch_bad.append(bad)
        if bad.id not in self.bad:
            self.bad[bad.id] = bad
            log.warning("%s: skipping %s (%s): %s", self.name, bad.id, bad.path, bad.reason)

    def _report(self) -> None:
        if self.epoch_bad:
            reasons = Counter(b.kind for b in self.epoch_bad)
            summary = "; ".join(f"{n} x {r}" for r, n in reasons.most_common())
            log.warning(
                "%s: epoch %d skipped %d bad sample(s): %s",
                self.name,
                self.epoch,
                len(self.epoch_bad),
                summary,
            )

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batch": self._consumed, "seed": self.sampler.seed}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self._consumed = int(state["batch"])


class TrainIterator:
    """One epoch = one pass over the unlabelled loader, each step paired with the next labelled
    batch (the labelled loader cycles through its own epochs). Yields
    ``(labelled_batch, unlabelled_batch)``; without unlabelled data, ``(labelled_batch, None)``
    over one labelled epoch. The labelled batch is never ``None`` when unlabelled data exists.
    """

    def __init__(self, labelled: BatchLoader, unlabelled: BatchLoader | None = None):
        self.labelled, self.unlabelled = labelled, unlabelled
        self._lab_iter: Iterator | None = None

    def set_epoch(self, epoch: int) -> None:
        (self.unlabelled or self.labelled).set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.unlabelled or self.labelled)

    def _next_labelled(self) -> dict:
        fresh_epochs = 0
        while fresh_epochs < 2:
            if self._lab_iter is None:
                self._lab_iter = iter(self.labelled)
            for batch in self._lab_iter:
                if batch is not None:
                    return batch
            self._lab_iter = None
            self.labelled.set_epoch(self.labelled.epoch + 1)
            fresh_epochs += 1
        raise UnisrError(f"{self.labelled.name}: no usable labelled batch in a whole epoch")

    def __iter__(self) -> Iterator[tuple[dict | None, dict | None]]:
        if self.unlabelled is None:
            for batch in self.labelled:
                yield batch, None
            return
        for batch in self.unlabelled:
            yield self._next_labelled(), batch

    def state_dict(self) -> dict:
        state = {"labelled": self.labelled.state_dict()}
        if self.unlabelled is not None:
            state["unlabelled"] = self.unlabelled.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self._lab_iter = None
        self.labelled.load_state_dict(state["labelled"])
        if self.unlabelled is not None:
            self.unlabelled.load_state_dict(state["unlabelled"])


def train_iterator(
    labelled: AVDataset,
    unlabelled: AVDataset | None,
    cfg: DataConfig,
    seed: int = 0,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> TrainIterator:
    """Training batches with separate frame budgets for the labelled and unlabelled sets."""

    def loader(dataset: AVDataset, budget: int, name: str, offset: int) -> BatchLoader:
        sampler = FrameBatchSampler(
            dataset.lengths, budget, seed=seed + offset, num_replicas=num_replicas, rank=rank
        )
        return BatchLoader(dataset, sampler, workers=cfg.workers, name=name)

    lab = loader(labelled, cfg.frames_per_batch, "labelled", 0)
    unlab = None
    if unlabelled is not None:
        unlab = loader(unlabelled, cfg.frames_per_batch_unlabelled, "unlabelled", 1)
    return TrainIterator(lab, unlab)
