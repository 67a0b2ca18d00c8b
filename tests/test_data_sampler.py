"""Frame-budget batch sampler: budget, bucketing, seeded shuffling, ranks, resume."""

import numpy as np
import pytest
import torch

from unisr.sampler import BatchLoader, FrameBatchSampler, TrainIterator

LENGTHS = np.random.default_rng(0).integers(10, 300, 500).tolist() + [900, 0]


def padded_frames(batch, lengths=LENGTHS):
    return max(max(lengths[i], 1) for i in batch) * len(batch)


@pytest.mark.parametrize("budget", [300, 600, 2400])
def test_budget_never_exceeded_and_everything_fits_once(budget):
    sampler = FrameBatchSampler(LENGTHS, budget, seed=3)
    batches = list(sampler)
    assert all(padded_frames(b) <= budget for b in batches)
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen))
    fits = {i for i, n in enumerate(LENGTHS) if n <= budget}
    assert set(seen) == fits
    assert (500 in fits) == (budget >= 900)
    # length bucketing: batches are dense (mean padding small compared with the budget)
    real = sum(max(LENGTHS[i], 1) for i in seen)
    assert real / sum(padded_frames(b) for b in batches) > 0.75


def test_shuffle_is_seeded_per_epoch():
    a, b = FrameBatchSampler(LENGTHS, 600, seed=1), FrameBatchSampler(LENGTHS, 600, seed=1)
    epoch0 = list(a)
    assert epoch0 == list(b)
    a.set_epoch(1)
    assert list(a) != epoch0
    assert list(FrameBatchSampler(LENGTHS, 600, seed=2)) != epoch0
    fixed = FrameBatchSampler(LENGTHS, 600, shuffle=False)
    first = list(fixed)
    fixed.set_epoch(5)
    assert list(fixed) == first


@pytest.mark.parametrize("world", [2, 3, 8])
def test_ranks_disjoint_and_equal_in_length(world):
    per_rank = [list(FrameBatchSampler(LENGTHS, 600, seed=4, num_replicas=world, rank=r))
                for r in range(world)]  # fmt: skip
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) > 0
    indices = [i for batches in per_rank for b in batches for i in b]
    assert len(indices) == len(set(indices))
    everything = FrameBatchSampler(LENGTHS, 600, seed=4).all_batches(0)
    assert len(everything) - len(per_rank[0]) * world < world  # at most world-1 batches dropped


def test_resume_mid_epoch_gives_the_remaining_batches():
    sampler = FrameBatchSampler(LENGTHS, 600, seed=7, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    full = list(sampler)
    it = iter(sampler)
    taken = [next(it) for _ in range(5)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "batch": 5, "seed": 7}
    resumed = FrameBatchSampler(LENGTHS, 600, seed=7, num_replicas=2, rank=1)
    resumed.load_state_dict(state)
    assert len(resumed) == len(full) - 5
    assert taken + list(resumed) == full
    assert list(resumed) == full  # the next pass is a whole epoch again


class Items(torch.utils.data.Dataset):
    """Minimal stand-in for AVDataset: items of the given lengths, some marked bad."""

    def __init__(self, lengths, bad=()):
        from unisr.dataset import BadSample

        self.lengths, self.bad, self.BadSample = lengths, set(bad), BadSample
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        if i in self.bad:
            return self.BadSample(f"u{i}", f"/x/u{i}.mp4", "file not found", "missing file")
        t = self.lengths[i]
        return {"id": f"u{i}", "video": torch.zeros(t, 4, 4), "audio": torch.zeros(t * 640),
                "tokens": [1, 2]}  # fmt: skip


def test_loader_resume_and_combined_iterator(caplog):
    lab_lengths, unlab_lengths = [5, 6, 7, 8, 9, 10], list(range(20, 60))
    lab = BatchLoader(Items(lab_lengths), FrameBatchSampler(lab_lengths, 20, seed=0), name="lab")
    unlab_sampler = FrameBatchSampler(unlab_lengths, 120, seed=1)
    unlab = BatchLoader(Items(unlab_lengths, bad={25}), unlab_sampler, name="unlab")
    train = TrainIterator(lab, unlab)
    with caplog.at_level("WARNING", logger="unisr.data"):
        steps = list(train)
    assert len(steps) == len(unlab) > len(lab)  # the labelled loader cycles
    assert all(lb is not None and lb.video.shape[0] >= 1 for lb, _ in steps)
    assert lab.epoch >= 1
    seen = [i for _, u in steps for i in u.ids]
    assert "u25" not in seen and len(seen) == len(unlab_lengths) - 1
    assert [r.message for r in caplog.records if "u25" in r.message] == [
        "unlab: skipping u25 (/x/u25.mp4): file not found"
    ]
    assert any("epoch 0 skipped 1 bad sample(s): 1 x missing file" in r.message
               for r in caplog.records)  # fmt: skip


def make_train(lab_lengths, unlab_lengths):
    lab = BatchLoader(Items(lab_lengths), FrameBatchSampler(lab_lengths, 20, seed=0))
    unlab = BatchLoader(Items(unlab_lengths), FrameBatchSampler(unlab_lengths, 120, seed=1))
    return TrainIterator(lab, unlab)


@pytest.mark.parametrize("stop", [1, 4, 5, 9])
def test_combined_iterator_resumes_mid_epoch(stop):
    lab_lengths, unlab_lengths = [5, 6, 7, 8, 9, 10, 11], list(range(20, 60))

    def ids(steps):
        return [(lb.ids, u.ids) for lb, u in steps]

    full = make_train(lab_lengths, unlab_lengths)
    full.set_epoch(1)
    expected = ids(full)
    stopped = make_train(lab_lengths, unlab_lengths)
    stopped.set_epoch(1)
    it = iter(stopped)
    first = [next(it) for _ in range(stop)]
    resumed = make_train(lab_lengths, unlab_lengths)
    resumed.load_state_dict(stopped.state_dict())
    assert len(resumed) == len(expected) - stop
    assert ids(first) + ids(resumed) == expected


def test_all_bad_batch_is_none():
    loader = BatchLoader(Items([5, 5], bad={0, 1}), FrameBatchSampler([5, 5], 10))
    assert list(loader) == [None]
    assert sorted(loader.bad) == ["u0", "u1"]
