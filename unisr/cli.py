"""The ``unisr`` command line. Each subcommand parses its arguments here and imports its module
lazily, so ``unisr --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import UnisrError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unisr", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_transcribe,
        _add_features,
        _add_convert,
        _add_tokenizer,
        _add_validate,
        _add_cache,
        _add_eval,
        _add_prepare,
        _add_merge_shards,
        _add_train,
        _add_pretrain,
        _add_synth,
        _add_demo,
    ):
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except UnisrError as err:
        print(f"unisr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unisr {args.command}: interrupted", file=sys.stderr)
        return 130


def _add_transcribe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe videos and sound files of any length, as text or subtitles",
        description="Transcribe face or mouth videos and sound files of any length: long ones "
        "are cut at pauses the model finds; words get times from the CTC head.",
    )
    p.add_argument(
        "files", nargs="*", metavar="FILE",
        help="videos (with their own sound track for a / av), sound files or folders",
    )  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="unisr checkpoint or official .pth")
    p.add_argument("--units", help="official unit list (unigram1000_units.txt) for .pth files")
    p.add_argument("--video", help="one face or mouth-crop video, any frame rate")
    p.add_argument("--audio", help="its sound file, any rate (default: the video's own track)")
    p.add_argument(
        "--modality", choices=["a", "v", "av"], default=None,
        help="stream to decode (default: av for a video with sound, v without, a for sound)",
    )  # fmt: skip
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--ctc-weight", type=float, default=0.1)
    p.add_argument("--method", choices=["beam", "greedy", "ctc"], default="beam")
    p.add_argument(
        "--max-segment", type=float, default=None, metavar="SECONDS",
        help="longest segment decoded at once (default: the longest clip the model was "
        "trained on, 24 s for official checkpoints)",
    )  # fmt: skip
    p.add_argument("--output-dir", help="write FILE's transcript as DIR/<name>.<format>")
    p.add_argument(
        "--output-format", default="all", choices=["txt", "srt", "vtt", "json", "all"],
        help="with --output-dir (default: all four)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="redo files whose outputs exist (default: skip them)")  # fmt: skip
    p.add_argument("--face-model", help="MediaPipe face_landmarker.task for face videos")
    p.add_argument("--device", default="cpu")
    _add_dtype(p)
    crop = p.add_mutually_exclusive_group()
    crop.add_argument(
        "--cropped", dest="cropped", action="store_const", const=True, default=None,
        help="the videos are already mouth crops (default: detected)",
    )  # fmt: skip
    crop.add_argument(
        "--face", dest="cropped", action="store_const", const=False,
        help="the videos show a face: crop the mouth (needs the prepare extra)",
    )  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        from .transcribe_files import transcribe_cli

        _check_device(args.device)
        return transcribe_cli(args)

    p.set_defaults(run=run)


def _add_dtype(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
        help="dtype of the model's weights and activations (scores stay float32)",
    )  # fmt: skip


def _check_device(device: str) -> None:
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UnisrError(f"device {device!r} requested but CUDA is not available")


def _load_model(args: argparse.Namespace):
    """The model of ``features``, after the checks that need none."""
    from .checkpoint import load_model

    if args.video is None and args.audio is None:
        raise UnisrError("give --video, --audio or both")
    _check_device(args.device)
    return load_model(args.checkpoint, units=args.units, device=args.device, dtype=args.dtype)


def _add_features(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="encoder outputs per stream of a video and/or audio")
    p.add_argument("--checkpoint", required=True, help="unisr checkpoint or official .pth")
    p.add_argument("--units", help="official unit list (unigram1000_units.txt) for .pth files")
    p.add_argument("--video", help="face or mouth-crop video, any frame rate")
    p.add_argument("--audio", help="sound file, any rate (default: the video's own track)")
    p.add_argument("--streams", help="comma-separated, e.g. v,a,av (default: all the inputs allow)")
    p.add_argument("--out", required=True, help=".pt (dict of streams) or .npy (one stream)")
    p.add_argument("--device", default="cpu")
    _add_dtype(p)

    def run(args: argparse.Namespace) -> int:
        import numpy as np
        import torch

        from .transcribe import features

        out = Path(args.out)
        if out.suffix not in (".pt", ".npy"):
            raise UnisrError(f"{out}: the output must end in .pt or .npy")
        streams = tuple(args.streams.split(",")) if args.streams else None
        if out.suffix == ".npy" and (streams is None or len(streams) != 1):
            raise UnisrError(f"{out}: .npy holds one stream; pass --streams v|a|av or write a .pt")
        model = _load_model(args)
        encoded = features(model, args.video, args.audio, streams)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".npy":
            np.save(out, next(iter(encoded.values())).float().numpy())  # numpy has no bf16
        else:
            torch.save(encoded, out)
        shapes = ", ".join(f"{s} {tuple(t.shape)}" for s, t in encoded.items())
        print(f"wrote {out}: {shapes}")
        return 0

    p.set_defaults(run=run)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="official .pth (or any checkpoint) -> unisr checkpoint")
    p.add_argument("src", help="checkpoint to read")
    p.add_argument("out", help="unisr checkpoint to write")
    p.add_argument("--units", help="official unit list (unigram1000_units.txt) for .pth files")

    def run(args: argparse.Namespace) -> int:
        from .checkpoint import convert

        model = convert(args.src, args.out, units=args.units)
        print(f"wrote {args.out}: {model.num_parameters():,} parameters")
        return 0

    p.set_defaults(run=run)


def _add_tokenizer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenizer", help="SentencePiece tokenizers")
    train = p.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "train", help="train a unigram tokenizer on a text file (one transcript per line)"
    )
    train.add_argument("--input", required=True, help="text file, one transcript per line")
    train.add_argument("--vocab-size", type=int, required=True, help="pieces, <unk> included")
    train.add_argument("--out", required=True, help="SentencePiece .model to write")

    def run(args: argparse.Namespace) -> int:
        from .tokenizer import Tokenizer

        source = Path(args.input)
        if not source.is_file():
            raise UnisrError(f"{source}: file not found")
        lines = source.read_text(encoding="utf-8").splitlines()
        tokenizer = Tokenizer.train(lines, args.vocab_size, args.out)
        print(f"wrote {args.out}: {len(tokenizer.pieces)} pieces")
        return 0

    p.set_defaults(run=run)


def _add_manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="typed .tsv, or USR / auto_avsr .csv")
    p.add_argument(
        "--root",
        action="append",
        metavar="[TAG=]DIR",
        help="CSV dialects: folder the paths are relative to (repeat TAG=DIR per tag)",
    )
    p.add_argument(
        "--audio-root",
        action="append",
        metavar="[TAG=]DIR",
        help="USR dialect: folder of the .wav files if not beside the videos",
    )
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.add_argument(
        "--tolerance",
        type=int,
        default=3,
        help="frames by which video, audio and manifest lengths may disagree",
    )


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check every utterance of a manifest up front")
    _add_manifest_args(p)
    p.add_argument("--tokenizer", help="SentencePiece .model or unit list, to check transcripts")
    p.add_argument("--unlabelled", action="store_true", help="do not check transcripts")
    p.add_argument(
        "--crop",
        type=int,
        default=88,
        help="the model's crop: smaller frames are reported (default 88, official; 0: no check)",
    )

    def run(args: argparse.Namespace) -> int:
        from .dataset import validate_cli

        return validate_cli(args)

    p.set_defaults(run=run)


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="decode a manifest into memory-mapped shards for training")
    _add_manifest_args(p)
    p.add_argument("--out", help="cache folder (default: MANIFEST.cache, found automatically)")

    def run(args: argparse.Namespace) -> int:
        from .cache import cache_cli

        return cache_cli(args)

    p.set_defaults(run=run)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="WER/CER of a checkpoint over a manifest, per modality")
    _add_manifest_args(p)
    p.add_argument("--checkpoint", required=True, help="unisr checkpoint or official .pth")
    p.add_argument("--units", help="official unit list (unigram1000_units.txt) for .pth files")
    p.add_argument("--out", required=True, help="folder for hypotheses and summary.json")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier evaluation in --out"
    )
    p.add_argument("--modality", nargs="+", choices=["a", "v", "av"], default=["a", "v", "av"])
    p.add_argument("--decoder", choices=["ctc", "greedy", "beam"], default="beam")
    p.add_argument("--beam", type=int, default=10, help="beam size (official evaluation: 40)")
    p.add_argument("--ctc-weight", type=float, default=0.1, help="beam search CTC weight")
    p.add_argument("--maxlenratio", type=float, default=1.0, help="output tokens per frame, max")
    p.add_argument("--snr", nargs="+", metavar="DB", help="noise levels in dB ('clean' too)")
    p.add_argument("--noise", help="noise recording mixed in at each --snr (e.g. babble.wav)")
    p.add_argument(
        "--buckets",
        nargs="+",
        type=int,
        metavar="FRAMES",
        help="length bucket edges in frames, e.g. 50 100 200",
    )
    p.add_argument("--batch-frames", type=int, default=2000, help="frames per batch (padded)")
    p.add_argument(
        "--decode-frames", type=int, default=None,
        help="padded frames beam-searched at once (default: 1500 for beam > 10, else the batch); "
        "memory grows with it times the beam",
    )  # fmt: skip
    p.add_argument("--device", default="cpu")
    _add_dtype(p)

    def run(args: argparse.Namespace) -> int:
        from .evaluate import eval_cli

        return eval_cli(args)

    p.set_defaults(run=run)


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="face videos -> mouth-crop corpus (mp4 + wav + manifest)")
    p.add_argument("src_dir", help="folder of face videos (with optional same-name .txt)")
    p.add_argument("out_dir", help="output folder: mouth mp4s, wavs, manifest.tsv, summary.json")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument(
        "--face-model",
        help="MediaPipe face_landmarker.task (default: the cached copy, fetched once)",
    )
    p.add_argument(
        "--shard", metavar="K/N", help="only the K-th of N deterministic parts (K from 0)"
    )
    p.add_argument(
        "--segment-seconds", type=float, default=24.0,
        help="cut clips with a word table into segments of at most this long (0: never)",
    )  # fmt: skip
    _add_csv_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from .prepare import prepare_cli

        return prepare_cli(args)

    p.set_defaults(run=run)


def _add_csv_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv", help="also write the auto_avsr CSV dialect here (needs --tokenizer)")
    p.add_argument("--tokenizer", help="SentencePiece .model for the CSV's token ids")


def _add_merge_shards(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge-shards", help="join the manifests of `prepare --shard K/N` jobs")
    p.add_argument("out_dir", help="the OUT_DIR all shards wrote into")
    _add_csv_args(p)

    def run(args: argparse.Namespace) -> int:
        from .prepare import merge_cli

        return merge_cli(args)

    p.set_defaults(run=run)


def _add_run_command(sub, name: str, help: str, example: str, module: str) -> None:
    """A training-run command: recipe, overrides, resume / overwrite; runs
    ``unisr.<module>.<name>_cli``."""
    p = sub.add_parser(name, help=help)
    p.add_argument("config", help=f"YAML config file or packaged recipe (e.g. {example})")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. optim.lr=1e-3")
    p.add_argument(
        "--resume", nargs="?", const="auto", help="training checkpoint (default: the run's newest)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in a folder that holds a run (the earlier run is moved aside)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"unisr.{module}"), f"{name}_cli")(args)

    p.set_defaults(run=run)


def _add_train(sub: argparse._SubParsersAction) -> None:
    help = "train a model: supervised, USR 1.0 or USR 2.0 semi-supervised"
    _add_run_command(sub, "train", help, "synth_demo", "train")


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    help = "self-supervised pre-training of the encoder on unlabelled clips"
    _add_run_command(sub, "pretrain", help, "synth_pretrain", "pretrain")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    from .synth.corpus import SIZES

    p = sub.add_parser("synth", help="build a synthetic audio-visual speech corpus (no download)")
    p.add_argument("--out", required=True, help="corpus folder (a rerun resumes it)")
    p.add_argument("--size", choices=list(SIZES), default="tiny")
    p.add_argument("--domain", choices=["grid", "open", "both"], default="grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes (default: all CPU cores)")
    p.add_argument("--vocab-size", type=int, help="tokenizer pieces (default: 96 grid, 256 open)")
    p.add_argument("--preview", action="store_true", help="also write preview.png and .mp4")

    def run(args: argparse.Namespace) -> int:
        from .synth import synth_cli

        return synth_cli(args)

    p.set_defaults(run=run)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="synthetic corpus -> USR 2.0 training -> test WER, on CPU")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the synth_demo recipe")
    p.add_argument("--corpus", default="data/synth_tiny_grid", help="built there if absent")
    p.add_argument("--out", default="runs/synth_demo", help="run folder")
    p.add_argument("--beam", type=int, default=10, help="beam size for the beam-search rows")
    p.add_argument(
        "--resume",
        action="store_const",
        const="auto",
        default=None,
        help="continue the demo run in --out from its newest checkpoint",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again, moving an earlier demo run in --out aside",
    )
    p.add_argument("--workers", type=int, default=0, help="processes for the corpus (0: all cores)")

    def run(args: argparse.Namespace) -> int:
        from .demo import demo_cli

        return demo_cli(args)

    p.set_defaults(run=run)


if __name__ == "__main__":
    sys.exit(main())
