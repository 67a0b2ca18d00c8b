"""The ``unisr`` command line. Each subcommand parses its arguments here and imports its module
lazily, so ``unisr --help`` stays fast."""

from __future__ import annotations

import argparse
import sys

from .errors import UnisrError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unisr", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_transcribe,):
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
    p = sub.add_parser("transcribe", help="transcribe a mouth video and/or audio file")
    p.add_argument("--checkpoint", required=True, help="unisr checkpoint or official .pth")
    p.add_argument("--units", help="official unit list (unigram1000_units.txt) for .pth files")
    p.add_argument("--video", help="mouth-crop video (mp4/avi)")
    p.add_argument("--audio", help="16 kHz wav (default: the video's own audio track)")
    p.add_argument("--modality", choices=["a", "v", "av"], default=None)
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--ctc-weight", type=float, default=0.1)
    p.add_argument("--device", default="cpu")

    def run(args: argparse.Namespace) -> int:
        from .transcribe import transcribe_cli

        return transcribe_cli(args)

    p.set_defaults(run=run)


if __name__ == "__main__":
    sys.exit(main())
