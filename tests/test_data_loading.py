"""Loading clips, 640-sample alignment, datasets, collate, the cache, and bad-data handling."""

import logging
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from unisr.cache import ClipCache, build_cache, cache_dir_for
from unisr.cli import main
from unisr.dataset import AVDataset, BadData, DataConfig, collate, load_clip, validate_rows
from unisr.errors import UnisrError
from unisr.manifest import ManifestRow, write_manifest
from unisr.media import write_audio, write_video
from unisr.sampler import BatchLoader, FrameBatchSampler
from unisr.tokenizer import Tokenizer

TEXTS = ["HELLO WORLD", "GOOD MORNING", "THE CAT SAT", "A DOG RAN HOME"]


def make_clip(folder, name, frames=20, samples=None, text="HELLO WORLD", rate=16000, seed=0,
              manifest_frames=None):  # fmt: skip
    """Write a lossless 96x96 gray mp4 and a wav; return its manifest row."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, 96, 96), dtype=np.uint8)
    video = (base + np.arange(frames, dtype=np.uint8)[:, None, None] * 3).astype(np.uint8)
    audio = rng.uniform(-0.5, 0.5, frames * 640 if samples is None else samples)
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / f"{name}.mp4", video)
    write_audio(folder / f"{name}.wav", audio, sample_rate=rate)
    count = frames if manifest_frames is None else manifest_frames
    return ManifestRow(name, str(folder / f"{name}.mp4"), str(folder / f"{name}.wav"), count, text)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return Tokenizer.train(TEXTS * 5, vocab_size=30)


def make_corpus(folder):
    """Good clips plus one clip for each kind of bad data; returns (rows, expected problems)."""
    good = [make_clip(folder, f"good{i}", frames=15 + 5 * i, text=TEXTS[i], seed=i)
            for i in range(4)]  # fmt: skip
    bad = {}

    def add(row, reason):
        bad[row.id] = reason
        return row

    rows = list(good)
    rows.append(add(ManifestRow("missing", str(folder / "nope.mp4"), str(folder / "nope.wav"),
                                10, "HELLO"), "file not found"))  # fmt: skip
    trunc = make_clip(folder, "truncated", frames=40, seed=9)
    data = (folder / "truncated.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    rows.append(add(trunc, "cannot decode video"))
    corrupt = make_clip(folder, "corrupt", seed=10)
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    rows.append(add(corrupt, "cannot decode video"))
    rows.append(add(make_clip(folder, "zero", manifest_frames=0), "manifest gives 0 frames"))
    rows.append(add(make_clip(folder, "rate", rate=8000, samples=20 * 320), "sample rate is 8000"))
    rows.append(add(make_clip(folder, "mismatch", samples=20 * 640 + 10 * 640), "A/V mismatch"))
    rows.append(add(make_clip(folder, "notext", text=" ?! "), "empty transcript"))
    rows.append(add(make_clip(folder, "accent", text="CAFÉ AU LAIT"), "unknown characters"))
    rows.append(add(make_clip(folder, "oov", text="QUIZ"), "unknown characters"))
    return rows, bad


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    rows, bad = make_corpus(folder / "clips")
    write_manifest(folder / "test.tsv", rows)
    return folder / "test.tsv", rows, bad


def test_clip_alignment_to_640_samples(tmp_path):
    row = make_clip(tmp_path, "long", frames=20, samples=20 * 640 + 700)  # 1.1 frames too long
    clip = load_clip(row)
    assert clip.frames.shape == (20, 96, 96) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (20 * 640,) and clip.audio.dtype == np.int16
    wav, _ = sf.read(row.audio, dtype="int16")
    assert np.array_equal(clip.audio, wav[: 20 * 640])
    row = make_clip(tmp_path, "short", frames=20, samples=20 * 640 - 1500)
    clip = load_clip(row)
    assert clip.audio.shape == (20 * 640,) and not clip.audio[-1500:].any()
    row = make_clip(tmp_path, "extra", frames=22, manifest_frames=20)  # video 2 frames longer
    assert load_clip(row).frames.shape[0] == 20
    with pytest.raises(BadData, match="video has 22 frames, manifest says 20"):
        load_clip(row, tolerance=1)
    row = make_clip(tmp_path, "far", frames=20, samples=24 * 640)
    with pytest.raises(BadData, match="A/V mismatch over 3 frames"):
        load_clip(row)
    row = make_clip(tmp_path, "fps", frames=20)
    write_video(row.video, np.zeros((20, 96, 96), np.uint8), fps=30)
    with pytest.raises(BadData, match="frame rate is 30 fps, expected 25"):
        load_clip(row)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((20 * 640, 2)), 16000)
    with pytest.raises(BadData, match="2 audio channels, expected mono"):
        load_clip(ManifestRow("s", str(tmp_path / "long.mp4"), str(stereo), 20))


def test_items_and_batches_have_the_contract_shapes(tmp_path, tokenizer):
    rows = [make_clip(tmp_path, f"c{i}", frames=10 + 7 * i, text=TEXTS[i], seed=i)
            for i in range(3)]  # fmt: skip
    labelled = AVDataset(rows, tokenizer=tokenizer)
    item = labelled[1]
    assert item["video"].shape == (17, 88, 88) and item["audio"].shape == (17 * 640,)
    assert tokenizer.decode(item["tokens"]) == TEXTS[1]
    batch, bad = collate([labelled[i] for i in range(3)])
    assert bad == [] and batch.ids == ["c0", "c1", "c2"]
    assert batch.video_student is None and batch.audio_student is None
    assert batch.video.shape == (3, 24, 88, 88) and batch.audio.shape == (3, 24 * 640)
    assert batch.lengths.tolist() == [10, 17, 24] and batch.frames == 51
    assert (batch.video[0, 10:] == 0).all() and (batch.audio[0, 10 * 640 :] == 0).all()
    assert batch.targets.shape[1] == int(batch.target_lengths.max())
    assert (batch.targets[batch.targets < 0] == -1).all()
    assert batch.targets[0, : batch.target_lengths[0]].tolist() == tokenizer.encode(TEXTS[0])

    cfg = DataConfig()
    cfg.augment.resize = 44
    unlabelled = AVDataset(rows, cfg, labelled=False, seed=1)
    batch, _ = collate([unlabelled[i] for i in range(3)])
    assert batch.targets is None and batch.target_lengths is None
    assert batch.video.shape == batch.video_student.shape == (3, 24, 44, 44)
    assert batch.audio.shape == batch.audio_student.shape == (3, 24 * 640)
    clean = unlabelled[2]
    assert not torch.equal(clean["video"], clean["video_student"])  # own crop/flip and masks
    wav = torch.from_numpy(sf.read(rows[2].audio, dtype="int16")[0] / 32768).float()
    assert torch.equal(clean["audio"], wav)  # the teacher hears the clean audio
    assert torch.equal(unlabelled[2]["video_student"], clean["video_student"])  # seeded per item
    unlabelled.set_epoch(1)
    assert not torch.equal(unlabelled[2]["video_student"], clean["video_student"])

    evaluation = AVDataset(rows, labelled=True, train=False, tokenizer=tokenizer)
    first = evaluation[0]
    assert torch.equal(first["video"], evaluation[0]["video"])  # no randomness at eval


def test_bad_files_are_skipped_named_and_counted(corpus, tokenizer, caplog):
    path, rows, bad = corpus
    dataset = AVDataset.from_manifest(path, tokenizer=tokenizer, use_cache=False)
    loader = BatchLoader(dataset, FrameBatchSampler(dataset.lengths, 400, seed=0), name="test")
    with caplog.at_level(logging.WARNING, logger="unisr.data"):
        batches = [b for b in loader if b is not None]
    ids = sorted(i for b in batches for i in b.ids)
    assert ids == ["good0", "good1", "good2", "good3"]
    assert set(loader.bad) == set(bad)
    for name, reason in bad.items():
        assert reason in loader.bad[name].reason, name
        messages = [r.message for r in caplog.records if f"skipping {name} " in r.message]
        assert len(messages) == 1 and reason in messages[0]
    by_name = {r.id: r for r in rows}
    assert loader.bad["rate"].path == by_name["rate"].audio
    assert loader.bad["truncated"].path == by_name["truncated"].video
    summary = [r.message for r in caplog.records if "epoch 0 skipped" in r.message]
    assert len(summary) == 1 and f"skipped {len(bad)} bad sample(s)" in summary[0]
    kinds = {"missing file": 1, "corrupt video": 2, "zero frames": 1, "sample rate": 1,
             "length mismatch": 1, "empty transcript": 1, "unknown characters": 2}  # fmt: skip
    assert all(f"{n} x {kind}" in summary[0] for kind, n in kinds.items())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="unisr.data"):
        list(loader)  # second epoch: counted again, but no second warning per file
    assert not [r for r in caplog.records if "skipping" in r.message]
    assert len(loader.epoch_bad) == len(bad)


def test_validate_reports_every_problem(corpus, tokenizer, tmp_path, capsys):
    path, rows, bad = corpus
    problems = validate_rows(rows, tokenizer)
    assert {p.id for p in problems} == set(bad)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["id", "file", "problem"]
    for name, reason in bad.items():
        if name != "oov":  # without a tokenizer, out-of-vocabulary text cannot be seen
            assert any(line.startswith(name + " ") and reason in line for line in lines), name
    assert f"{len(bad) - 1} of {len(rows)} utterances have problems" in out
    good = tmp_path / "good.tsv"
    write_manifest(good, [r for r in rows if r.id not in bad])
    assert main(["validate", str(good)]) == 0
    assert "4 utterances, no problems" in capsys.readouterr().out


def test_cache_gives_the_same_items_and_reasons(corpus, tokenizer, tmp_path):
    path, rows, bad = corpus
    manifest = tmp_path / "copy" / "test.tsv"
    shutil.copytree(path.parent / "clips", tmp_path / "copy" / "clips")
    moved = [ManifestRow(r.id, r.video.replace(str(path.parent), str(manifest.parent)),
                         r.audio.replace(str(path.parent), str(manifest.parent)), r.frames, r.text)
             for r in rows]  # fmt: skip
    write_manifest(manifest, moved)
    assert main(["cache", str(manifest)]) == 0
    cache = ClipCache.find(manifest)
    assert cache is not None and len(cache) == len(rows)
    plain = AVDataset.from_manifest(manifest, tokenizer=tokenizer, train=False, use_cache=False)
    cached = AVDataset.from_manifest(manifest, tokenizer=tokenizer, train=False)
    assert cached.cache is not None
    for i, row in enumerate(moved):
        a, b = plain[i], cached[i]
        if row.id in bad:
            assert a == b, row.id  # same BadSample (file and reason)
        else:
            assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
    # sources may go away once cached; a changed source is decoded again
    (manifest.parent / "clips" / "good1.mp4").unlink()
    assert cached[1]["video"].shape == (20, 88, 88)
    old = cached[0]["video"]
    make_clip(manifest.parent / "clips", "good0", frames=16, seed=5, manifest_frames=15)
    fresh = plain[0]["video"]
    assert not torch.equal(fresh, old) and torch.equal(cached[0]["video"], fresh)
    assert cache_dir_for(manifest) == manifest.parent / "test.tsv.cache"
    summary = build_cache(moved[:2], tmp_path / "other", workers=2)  # the process-pool path
    assert summary.clips == 1 and [b.id for b in summary.bad] == ["good1"]
    assert ClipCache(tmp_path / "other").get(moved[0]).frames.shape == (15, 96, 96)


def test_token_ids_from_another_vocabulary_are_refused(tmp_path, tokenizer):
    row = make_clip(tmp_path, "c0", text=TEXTS[0])
    row.tokens = tokenizer.encode(TEXTS[0])
    AVDataset([row], tokenizer=tokenizer)  # ids made with this tokenizer: accepted
    row.tokens = [t + 1 for t in row.tokens]  # as if made with a shifted vocabulary
    with pytest.raises(UnisrError, match="c0.mp4: the manifest's token ids for utterance c0"):
        AVDataset([row], tokenizer=tokenizer)


def test_several_manifests_read_as_one_each_from_its_cache(tmp_path, tokenizer):
    """``data.labelled`` may list manifests (e.g. a corpus's labelled and unlabelled clips, both
    transcribed): their rows are concatenated and each clip comes from its own manifest's cache,
    so deleting the sources after caching changes nothing."""
    paths, rows = [], []
    for part in range(2):
        clips = [make_clip(tmp_path / f"p{part}", f"p{part}c{i}", frames=15 + i, text=TEXTS[i],
                           seed=part * 10 + i) for i in range(2)]  # fmt: skip
        path = tmp_path / f"part{part}.tsv"
        write_manifest(path, clips)
        assert main(["cache", str(path)]) == 0
        paths.append(path)
        rows += clips
    for folder in ("p0", "p1"):
        shutil.rmtree(tmp_path / folder)
    dataset = AVDataset.from_manifest(paths, tokenizer=tokenizer, train=False)
    assert [r.id for r in dataset.rows] == [r.id for r in rows]
    for i, row in enumerate(rows):
        item = dataset[i]
        assert item["video"].shape[0] == row.frames, row.id
        assert item["tokens"] == tokenizer.encode(row.text)
