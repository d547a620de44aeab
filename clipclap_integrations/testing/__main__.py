"""``python -m clipclap_integrations.testing build|tokenizer ...``."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
from collections.abc import Sequence

from clipclap_integrations.testing.builder import build_model
from clipclap_integrations.testing.clip_tokenizer import write_clip_tokenizer
from clipclap_integrations.testing.export import GRAPH_NAMES
from clipclap_integrations.testing.torch_models import build_torch_models
from clipclap_integrations.testing.verify import verify_export


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clipclap_integrations.testing",
        description="Build synthetic (random-weight) CLIPCLAP models in the real file layout.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build a synthetic model folder")
    build.add_argument("--size", choices=("tiny", "full"), default="tiny")
    build.add_argument("--out", required=True, type=pathlib.Path, help="output folder")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--external-data",
        nargs="+",
        action="extend",
        default=[],
        choices=GRAPH_NAMES,
        metavar="GRAPH_NAME",
        help="store these graphs' weights in <name>.onnx.data beside the graph",
    )
    build.add_argument(
        "--verify",
        action="store_true",
        help="afterwards compare every graph with torch under onnxruntime",
    )

    tok = commands.add_parser(
        "tokenizer", help="rebuild CLIP's tokenizer.json from the open-clip-torch wheel"
    )
    tok.add_argument(
        "--wheel",
        required=True,
        type=pathlib.Path,
        help="open_clip_torch-*.whl (or bpe_simple_vocab_16e6.txt.gz)",
    )
    tok.add_argument("--out", required=True, type=pathlib.Path, help="*.json or *.json.gz")

    ref = commands.add_parser(
        "reference", help="write transformers + torch reference vectors for a synthetic model"
    )
    ref.add_argument("--model", required=True, type=pathlib.Path, help="synthetic model folder")
    ref.add_argument(
        "--media", required=True, type=pathlib.Path, help="folder with texts.json, images, audio"
    )
    ref.add_argument("--out", required=True, type=pathlib.Path, help="output .npz")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "reference":
        from clipclap_integrations.testing.reference import read_reference, write_reference

        out = write_reference(args.model, args.media, args.out)
        print(f"wrote {len(read_reference(out)[0])} reference vectors to {out}")
        return 0
    if args.command == "tokenizer":
        out = write_clip_tokenizer(args.wheel, args.out)
        print(f"wrote {out} ({out.stat().st_size:,} bytes)")
        return 0

    start = time.perf_counter()
    out = build_model(args.out, size=args.size, seed=args.seed, external_data=args.external_data)
    elapsed = time.perf_counter() - start
    total = 0
    for path in sorted(out.iterdir()):
        if path.is_file():
            total += path.stat().st_size
            print(f"{path.stat().st_size:>13,}  {path.name}")
    print(f"{total:>13,}  total; built {args.size} (seed {args.seed}) in {elapsed:.1f} s")
    if args.verify:
        check = verify_export(build_torch_models(args.size, args.seed), out)
        for key, value in check.outputs.items():
            print(f"  {key}: max |onnx - torch| / max(1, |torch|) = {value:.2e}")
        for key, value in check.vectors.items():
            print(f"  {key} vectors: max |onnx - torch| = {value:.2e}")
        if not check.ok():
            print("verification FAILED", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
