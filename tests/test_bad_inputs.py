"""Hostile inputs, run through every command they apply to: each gives a clear one-line error
(exit status 2), or is reported, or skipped and counted, and nothing outside the command's own
output changes. Needs nothing outside the repository (a random tiny model, files written here)."""

from __future__ import annotations

import copy
import json
import pickle
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from unisr.checkpoint import read_checkpoint, save_checkpoint
from unisr.cli import main
from unisr.config import model_config
from unisr.dataset import AVDataset, BadSample, DataConfig
from unisr.manifest import ManifestRow, write_manifest
from unisr.media import write_audio, write_video
from unisr.model import UnifiedModel
from unisr.synth.corpus import build_corpus
from unisr.tokenizer import Tokenizer
from unisr.transforms import AugmentConfig

TEXTS = ["BIN RED NOW", "LAY BLUE SOON", "PLACE GREEN AT", "SET WHITE AGAIN"]
FRAMES = 12


# ---------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, command: str, *fragments: str) -> None:
    """Exit status 2 and a single ``unisr COMMAND: error: ...`` line holding ``fragments``."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"unisr {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def mouth_video(path: Path, frames: int = FRAMES, size: int = 96, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    write_video(path, rng.integers(0, 256, (frames, size, size), dtype=np.uint8))
    return path


def faststart_truncated(path: Path, frames: int = 50) -> Path:
    """An mp4 with its index first (as most cameras and encoders write), cut in half: it still
    opens and decodes part of its frames."""
    rng = np.random.default_rng(1)
    full = path.with_name("full_" + path.name)
    with av.open(str(full), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264rgb", rate=Fraction(25))
        stream.pix_fmt, stream.width, stream.height = "rgb24", 96, 96
        for image in rng.integers(0, 256, (frames, 96, 96, 3), dtype=np.uint8):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A tiny random model checkpoint (crop 88), its tokenizer, good clips and hostile files."""
    root = tmp_path_factory.mktemp("bad_inputs")
    tokenizer = Tokenizer.train(TEXTS * 5, vocab_size=24, out_path=root / "tokenizer.model")
    torch.manual_seed(0)
    config = model_config("tiny", d_model=64, ff_units=128, frontend_width=4, image_size=24,
                          vocab_size=tokenizer.vocab_size)  # fmt: skip
    model = UnifiedModel(config).eval()
    save_checkpoint(root / "model.pt", model, tokenizer)
    torch.save(model.state_dict(), root / "plain.pth")  # an "official" file: needs --units
    f = {"root": root, "tokenizer": tokenizer, "ckpt": root / "model.pt"}
    f["mp4"] = mouth_video(root / "mouth.mp4")
    rng = np.random.default_rng(2)
    speech = rng.uniform(-0.3, 0.3, FRAMES * 640).astype(np.float32)
    write_audio(root / "speech.wav", speech)
    f["wav"] = root / "speech.wav"
    f["small_mp4"] = mouth_video(root / "small.mp4", size=64)
    f["one_frame_mp4"] = mouth_video(root / "one_frame.mp4", frames=1)
    f["truncated_mp4"] = faststart_truncated(root / "truncated.mp4")
    sf.write(root / "stereo.wav", np.stack([speech, -speech], axis=1), 16000)
    f["stereo_wav"] = root / "stereo.wav"
    sf.write(root / "empty.wav", np.zeros(0, np.float32), 16000, subtype="FLOAT")
    f["empty_wav"] = root / "empty.wav"
    nan = speech.copy()
    nan[100:200] = np.nan
    sf.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    f["nan_wav"] = root / "nan.wav"
    write_audio(root / "long.wav", rng.uniform(-0.3, 0.3, 10 * 16000))
    f["long_wav"] = root / "long.wav"
    (root / "binary.txt").write_bytes(bytes(range(256)) * 4)
    f["binary"] = root / "binary.txt"
    return f


def hostile_checkpoint(world, name: str, change) -> Path:
    data = copy.deepcopy(read_checkpoint(world["ckpt"]))
    change(data)
    path = world["root"] / "ckpts" / name
    path.parent.mkdir(exist_ok=True)
    torch.save(data, path)
    return path


# ---------------------------------------------------------------- single inputs


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def _pickled(world) -> Path:
    path = world["root"] / "ckpts" / "pickled.pt"
    path.parent.mkdir(exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"format": "unisr", "model": Payload()}, f)
    return path


CHECKPOINTS = {
    # name: (make the file, what the error says)
    "enormous config": (
        lambda w: hostile_checkpoint(
            w, "huge.pt", lambda d: d["config"].update(d_model=8192, enc_layers=4000)
        ),
        "the config does not match the weights: d_model 8192 (tensors: 64)",
    ),
    "no model": (
        lambda w: hostile_checkpoint(w, "nomodel.pt", lambda d: d.pop("model")),
        "without model",
    ),
    "broken tokenizer bytes": (
        lambda w: hostile_checkpoint(
            w, "badtok.pt", lambda d: d["tokenizer"].update(sp_model=b"\x00garbage")
        ),
        "bad vocabulary: the SentencePiece model is damaged",
    ),
    "pickled object": (_pickled, "not a plain checkpoint"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CHECKPOINTS))
@pytest.mark.parametrize("command", ["transcribe", "features", "eval", "convert"])
def test_malformed_checkpoints_are_one_line_errors(world, capsys, tmp_path, case, command):
    make, message = CHECKPOINTS[case]
    path = make(world)
    manifest = tmp_path / "m.tsv"
    write_manifest(
        manifest, [ManifestRow("u", str(world["mp4"]), str(world["wav"]), FRAMES, "BIN")]
    )
    argv = {
        "transcribe": ["--checkpoint", path, "--video", world["mp4"], "--audio", world["wav"]],
        "features": ["--checkpoint", path, "--video", world["mp4"], "--out", tmp_path / "f.pt"],
        "eval": [manifest, "--checkpoint", path, "--out", tmp_path / "eval"],
        "convert": [path, tmp_path / "out.pt"],
    }[command]
    before = snapshot(world["root"])
    start = time.perf_counter()
    code, out, err = run_cli(capsys, command, *argv)
    one_line_error(code, err, command, message)
    assert time.perf_counter() - start < 20  # refused before anything is built
    assert "weights_only" not in err and "this must never run" not in out
    assert snapshot(world["root"]) == before
    assert not (tmp_path / "f.pt").exists() and not (tmp_path / "out.pt").exists()
    assert not (tmp_path / "eval" / "summary.json").exists()


AUDIO = {
    "empty": ("empty_wav", "audio has no samples"),
    "nan": ("nan_wav", "100 non-finite sample(s)"),
    "ten seconds for twelve frames": ("long_wav", "A/V mismatch over 3 frames"),
}


AUDIO_CASES = [(case, m) for case in AUDIO for m in ("a", "av") if m == "av" or "ten" not in case]


@pytest.mark.parametrize(("case", "modality"), AUDIO_CASES)
@pytest.mark.parametrize("command", ["transcribe", "features"])
def test_bad_audio_for_a_single_input(world, capsys, tmp_path, case, command, modality):
    key, message = AUDIO[case]
    argv = ["--checkpoint", world["ckpt"], "--audio", world[key]]
    argv += ["--video", world["mp4"]] if modality == "av" else []
    if command == "transcribe":
        argv += ["--modality", modality, "--method", "ctc"]
    else:
        argv += ["--streams", modality, "--out", tmp_path / "f.pt"]
    before = snapshot(world["root"])
    code, _, err = run_cli(capsys, command, *argv)
    one_line_error(code, err, command, str(world[key]), message)
    assert snapshot(world["root"]) == before and not (tmp_path / "f.pt").exists()


VIDEO = {
    "smaller than the crop": ("small_mp4", "frames of 64x64 are smaller than the model's 88x88"),
    "truncated": ("truncated_mp4", "truncated or damaged video: decoded"),
}


@pytest.mark.parametrize("case", list(VIDEO))
@pytest.mark.parametrize("command", ["transcribe", "features"])
def test_bad_video_for_a_single_input(world, capsys, tmp_path, case, command):
    key, message = VIDEO[case]
    argv = ["--checkpoint", world["ckpt"], "--video", world[key], "--cropped"]
    if command == "transcribe":
        argv += ["--modality", "v", "--method", "ctc"]
    else:
        argv = [a for a in argv if a != "--cropped"] + [
            "--streams",
            "v",
            "--out",
            tmp_path / "f.pt",
        ]
    before = snapshot(world["root"])
    code, _, err = run_cli(capsys, command, *argv)
    one_line_error(code, err, command, str(world[key]), message)
    assert snapshot(world["root"]) == before


def test_good_inputs_still_work(world, capsys, tmp_path):
    """The checks refuse only what is wrong: the good files transcribe and give features."""
    inputs = ["--checkpoint", world["ckpt"], "--video", world["mp4"], "--audio", world["wav"]]
    code, out, err = run_cli(capsys, "transcribe", *inputs, "--method", "ctc")
    assert code == 0, err
    code, out, err = run_cli(capsys, "features", *inputs, "--out", tmp_path / "f.pt")
    assert code == 0, err
    assert torch.load(tmp_path / "f.pt")["av"].shape[0] == FRAMES


def test_binary_unit_list(world, capsys, tmp_path):
    before = snapshot(world["root"])
    code, _, err = run_cli(capsys, "convert", world["root"] / "plain.pth", tmp_path / "o.pt",
                           "--units", world["binary"])  # fmt: skip
    one_line_error(code, err, "convert", "not a unit list (not UTF-8 text")
    manifest = tmp_path / "m.tsv"
    write_manifest(
        manifest, [ManifestRow("u", str(world["mp4"]), str(world["wav"]), FRAMES, "BIN")]
    )
    code, _, err = run_cli(capsys, "validate", manifest, "--tokenizer", world["binary"])
    one_line_error(code, err, "validate", "not a unit list")
    assert snapshot(world["root"]) == before and not (tmp_path / "o.pt").exists()


# ---------------------------------------------------------------- manifests


def rows_for(world, **changes) -> list[ManifestRow]:
    row = ManifestRow("u", str(world["mp4"]), str(world["wav"]), FRAMES, "BIN RED NOW")
    for key, value in changes.items():
        setattr(row, key, value)
    return [row]


def test_header_only_manifest_is_refused_everywhere(world, capsys, tmp_path):
    manifest = tmp_path / "empty.tsv"
    manifest.write_text("id\tvideo\taudio\tframes\ttext\n")
    for command, extra in (
        ("validate", []),
        ("cache", ["--out", tmp_path / "cache"]),
        ("eval", ["--checkpoint", world["ckpt"], "--out", tmp_path / "eval"]),
    ):
        code, _, err = run_cli(capsys, command, manifest, *extra)
        one_line_error(code, err, command, "no utterances")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tsv"]


def test_utf8_bom_manifest_reads_as_the_same_manifest(world, capsys, tmp_path):
    plain, bom = tmp_path / "plain.tsv", tmp_path / "bom.tsv"
    write_manifest(plain, rows_for(world))
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    code, out, err = run_cli(capsys, "validate", bom)
    assert code == 0 and "1 utterances, no problems" in out, err


def make_manifest(tmp_path, rows) -> Path:
    path = tmp_path / "m.tsv"
    write_manifest(path, rows)
    return path


def vocabulary_rows(world) -> dict[str, tuple[list[ManifestRow], str]]:
    eos = world["tokenizer"].sos
    return {
        "out of the vocabulary": (rows_for(world, text="", tokens=[3, 500]), "token ids 500"),
        "blank": (rows_for(world, text="", tokens=[0, 3]), "token ids 0"),
        "sos/eos": (rows_for(world, text="", tokens=[3, eos]), f"token ids {eos}"),
    }


@pytest.mark.parametrize("case", ["out of the vocabulary", "blank", "sos/eos"])
def test_token_ids_outside_the_vocabulary(world, capsys, tmp_path, case):
    rows, message = vocabulary_rows(world)[case]
    manifest = make_manifest(tmp_path, rows)
    before = snapshot(world["root"])
    # validate reports it (with the tokenizer; the blank even without one)
    tokenizer = world["root"] / "tokenizer.model"
    code, out, _ = run_cli(capsys, "validate", manifest, "--tokenizer", tokenizer)
    assert code == 1 and message in out and "outside the vocabulary" in out
    if case == "blank":
        code, out, _ = run_cli(capsys, "validate", manifest)
        assert code == 1 and message in out
    # the training data path skips it (no IndexError in the loss)
    item = AVDataset(
        rows, DataConfig(augment=AugmentConfig(crop=88)), tokenizer=world["tokenizer"]
    )[0]
    assert isinstance(item, BadSample) and message in item.reason
    # eval skips it, names it, and decodes nothing wrong
    out_dir = tmp_path / "eval"
    code, out, err = run_cli(capsys, "eval", manifest, "--checkpoint", world["ckpt"], "--out",
                             out_dir, "--decoder", "ctc", "--modality", "a")  # fmt: skip
    assert code == 0, err
    summary = json.loads((out_dir / "summary.json").read_text())
    assert [s["id"] for s in summary["skipped"]] == ["u"] and message in out
    assert snapshot(world["root"]) == before


def test_frames_smaller_than_the_crop_and_one_frame_clips(world, capsys, tmp_path):
    small = rows_for(world, id="small", video=str(world["small_mp4"]))[0]
    good = rows_for(world, id="good")[0]
    manifest = make_manifest(tmp_path, [good, small])
    code, out, _ = run_cli(capsys, "validate", manifest)
    assert code == 1 and "smaller than the model's 88x88 crop" in out and "small" in out
    assert run_cli(capsys, "validate", manifest, "--crop", 64)[0] == 0
    # eval: skipped, counted and named; the good clip is still decoded
    code, out, err = run_cli(capsys, "eval", manifest, "--checkpoint", world["ckpt"], "--out",
                             tmp_path / "eval", "--decoder", "ctc", "--modality", "v")  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert [s["id"] for s in summary["skipped"]] == ["small"]
    assert summary["results"][0]["utterances"] == 1 and "small:" in out
    # training: both the small clip and a one-frame clip are skipped samples, not a crash
    one = ManifestRow("one", str(world["one_frame_mp4"]), str(world["wav"]), 1, "BIN")
    write_audio(tmp_path / "one.wav", np.zeros(640, np.float32))
    one.audio = str(tmp_path / "one.wav")
    data = DataConfig(augment=AugmentConfig(crop=88, resize=24))
    dataset = AVDataset([good, small, one], data, tokenizer=world["tokenizer"])
    items = [dataset[i] for i in range(3)]
    assert isinstance(items[0], dict)
    assert isinstance(items[1], BadSample) and items[1].kind == "frame size"
    assert isinstance(items[2], BadSample) and "training needs at least 2" in items[2].reason
    evaluation = AVDataset([one], data, labelled=False, train=False)
    assert isinstance(evaluation[0], dict)  # a one-frame clip can be decoded
    write_manifest(manifest, [good, one])
    code, out, _ = run_cli(capsys, "validate", manifest)  # validate reports what training skips
    assert code == 1 and "1 frame(s), training needs at least 2" in out


SHARED = {
    "stereo_wav": "2 audio channels",
    "empty_wav": "audio has no samples",
    "nan_wav": "non-finite sample(s)",
    "truncated_mp4": "truncated or damaged video",
}


@pytest.mark.parametrize("case", list(SHARED))
def test_validate_and_the_data_path_reject_the_same_bad_files(world, capsys, tmp_path, case):
    field = "video" if case.endswith("mp4") else "audio"
    rows = rows_for(world, **{field: str(world[case])})
    manifest = make_manifest(tmp_path, rows)
    code, out, _ = run_cli(capsys, "validate", manifest)
    assert code == 1 and str(world[case]) in out and SHARED[case] in out
    item = AVDataset(rows, tokenizer=world["tokenizer"])[0]
    assert isinstance(item, BadSample) and item.path == str(world[case])
    assert SHARED[case] in item.reason


# ---------------------------------------------------------------- output folders


def test_eval_output_path_is_checked_before_decoding(world, capsys, tmp_path, monkeypatch):
    import unisr.evaluate as evaluate

    manifest = make_manifest(tmp_path, rows_for(world))
    decoded = []
    real = evaluate.evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: decoded.append(1) or real(*a, **k))
    argv = [manifest, "--checkpoint", world["ckpt"], "--decoder", "ctc"]
    target = tmp_path / "results.txt"
    target.write_text("keep me\n")
    code, _, err = run_cli(capsys, "eval", *argv, "--out", target, "--modality", "a")
    one_line_error(code, err, "eval", "exists and is not a folder")
    assert target.read_text() == "keep me\n" and not decoded
    # a folder with an earlier run: refused; with --overwrite its files are replaced, not mixed
    out_dir = tmp_path / "eval"
    assert run_cli(capsys, "eval", *argv, "--out", out_dir, "--modality", "a", "v")[0] == 0
    assert (out_dir / "hyps_v_clean.tsv").is_file()
    (out_dir / "notes.md").write_text("mine\n")
    before = snapshot(out_dir)
    code, _, err = run_cli(capsys, "eval", *argv, "--out", out_dir, "--modality", "a")
    one_line_error(code, err, "eval", "holds an earlier evaluation", "--overwrite")
    assert snapshot(out_dir) == before and len(decoded) == 1
    assert (
        run_cli(capsys, "eval", *argv, "--out", out_dir, "--modality", "a", "--overwrite")[0] == 0
    )
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "hyps_a_clean.tsv",
        "notes.md",
        "summary.json",
    ]
    assert json.loads((out_dir / "summary.json").read_text())["results"][0]["stream"] == "a"


def test_synth_builds_only_into_an_empty_folder_or_its_own_corpus(capsys, tmp_path):
    user = tmp_path / "mine"
    for name in (".draft.partial.txt", "summary.json", "tokenizer.model", "train.tsv",
                 "noise/babble.wav", "train_labelled/.x.partial.mp4"):  # fmt: skip
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(f"the user's {name}\n")
    before = snapshot(user)
    code, _, err = run_cli(capsys, "synth", "--out", user, "--size", "tiny", "--workers", 1)
    one_line_error(code, err, "synth", "not empty", "holds no unisr synth corpus")
    assert snapshot(user) == before
    (tmp_path / "a_file").write_text("x")
    code, _, err = run_cli(capsys, "synth", "--out", tmp_path / "a_file")
    one_line_error(code, err, "synth", "not a folder")
    # its own corpus: a rerun deletes its own half-written files, never another file
    corpus = tmp_path / "corpus"
    build_corpus(corpus, size="test", workers=1, progress=False, limit=0)
    own = corpus / "train_labelled" / ".train_labelled_000001.partial.mp4"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_bytes(b"\0" * 10)
    theirs = [corpus / ".notes.partial.txt", corpus / "train_labelled" / ".backup.partial.mp4"]
    for path in theirs:
        path.write_text("keep\n")
    build_corpus(corpus, size="test", workers=1, progress=False, limit=0)
    assert not own.exists() and all(p.read_text() == "keep\n" for p in theirs)


def test_prepare_refuses_a_missing_source(capsys, tmp_path):
    code, _, err = run_cli(capsys, "prepare", tmp_path / "nope", tmp_path / "out")
    one_line_error(code, err, "prepare", "not a folder")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- run folders


@pytest.fixture(scope="module")
def train_args(tmp_path_factory):
    """``unisr train`` arguments for a two-step supervised run on a tiny corpus."""
    from train_corpus import make_corpus, overrides

    root = tmp_path_factory.mktemp("train")
    corpus = make_corpus(root / "corpus", labelled=6, unlabelled=2, val=2)
    (root / "tiny.yaml").write_text("model:\n  preset: tiny\n")

    def args(out: Path, *flags, **extra) -> list:
        settings = {"optim.max_steps": 2, "trainer.ckpt_every": 1, "trainer.keep_checkpoints": 2,
                    "data.val": "null", **extra}  # fmt: skip
        return [
            "train",
            root / "tiny.yaml",
            *overrides(corpus, out, semi=False, **settings),
            *flags,
        ]

    return args


def test_run_folders_are_never_mixed_or_lost(train_args, capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(out))
    assert code == 0, err
    first = json.loads((out / "run.json").read_text())["run_id"]
    names = {"run.json", "config.yaml", "checkpoints", "model.pt", "model_avg.pt", "csv"}
    assert names <= {p.name for p in out.iterdir()}
    before = snapshot(out)
    # started again without a flag: refused, nothing touched
    code, _, err = run_cli(capsys, *train_args(out, **{"optim.lr": 1e-4}))
    one_line_error(code, err, "train", "holds a training run", "--resume", "--overwrite")
    # a mistyped manifest is found before anything is written, even with --overwrite
    code, _, err = run_cli(capsys, *train_args(out, "--overwrite", **{"data.labelled": "typo.tsv"}))
    one_line_error(code, err, "train", "typo.tsv", "file not found")
    code, _, err = run_cli(capsys, *train_args(out, "--overwrite", "--resume"))
    one_line_error(code, err, "train", "give one")
    assert snapshot(out) == before and sorted(tmp_path.iterdir()) == [out]
    # --resume with nothing to resume is an error, in an empty folder or a missing one
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing"):
        code, _, err = run_cli(capsys, *train_args(folder, "--resume"))
        one_line_error(code, err, "train", "nothing to resume")
    assert not (tmp_path / "missing").exists() and not any((tmp_path / "empty").iterdir())
    # --overwrite moves the earlier run aside, whole, and says so
    code, printed, err = run_cli(capsys, *train_args(out, "--overwrite"))
    assert code == 0, err
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert f"moved the earlier run {out} to {aside}" in printed
    assert snapshot(aside) == before
    second = json.loads((out / "run.json").read_text())["run_id"]
    assert second != first
    # checkpoints of the other run among this run's: never resumed, pruned, averaged or
    # overwritten (one at the step this run saves next, one newer than any of this run)
    old = (aside / "checkpoints" / "step-00000002.ckpt").read_bytes()
    foreign = [out / "checkpoints" / f"step-0000000{k}.ckpt" for k in (3, 9)]
    for path in foreign:
        path.write_bytes(old)
    code, _, err = run_cli(capsys, *train_args(out, "--resume", **{"optim.max_steps": 4}))
    assert code == 0, err
    assert all(path.read_bytes() == old for path in foreign)
    ours = sorted(p.name for p in (out / "checkpoints").iterdir() if p not in foreign)
    assert ours == ["step-00000003-" + second + ".ckpt", "step-00000004.ckpt"]  # kept 2
    averaged = read_checkpoint(out / "model_avg.pt")["averaged"]
    assert averaged == ours and read_checkpoint(out / "model.pt")["step"] == 4
    assert json.loads((out / "run.json").read_text())["run_id"] == second


def test_missing_fixture_skips_in_a_clone_and_fails_in_ci(tmp_path, monkeypatch):
    from conftest import require_fixture

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="official fixture tiny_model.pth not found"):
        require_fixture(tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs it"):
        require_fixture(tmp_path)
