"""The ``clipclap`` command: download the model, embed things, index folders, search them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cli_index import (
    DEFAULT_COLLECTION,
    DEFAULT_DB,
    EXIT_INTERRUPTED,
    MODEL_OPTIONS,
    cmd_index,
    cmd_search,
    in_cli_terms,
    make_embedder,
    path_problem,
)
from .errors import ClipClapError
from .runtime.model import CLAP_WINDOW_S

EPILOG = """examples:
  clipclap download                      fetch antflydb/clipclap into the Hugging Face cache
  clipclap index ~/Pictures ~/Sounds     embed every image, sound and text file into ./clipclap-db
  clipclap search "a dog barking"        the nearest images, sounds and texts to a sentence
  clipclap search bark.wav -k 5 --modality image
  clipclap embed "a cat" cat.jpg > vectors.jsonl

model: --model takes a local folder or a Hub repo id (default $CLIPCLAP_MODEL or
antflydb/clipclap; for index and search of an existing collection, the model it was built
with); set HF_HUB_OFFLINE=1 to use the cache only."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _window_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= CLAP_WINDOW_S:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {CLAP_WINDOW_S:g} s, got {text}"
        )
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be more than 0 s, got {text}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model folder or Hub repo id (default: $CLIPCLAP_MODEL, else the model of an "
        "existing collection for index and search, else antflydb/clipclap)",
    )
    for name, parse in MODEL_OPTIONS.items():
        _option_flag(p, name, parse)


def _option_flag(p: argparse.ArgumentParser, name: str, parse: Any) -> None:
    """A flag for one of the embedder's options: its help and its check are the option's."""
    from .options import option_info

    info = option_info(name)

    def value(text: str) -> Any:
        try:
            got = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {parse.__name__}: {text!r}") from None
        problem = info.problem(name, got)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return got

    p.add_argument("--" + name.replace("_", "-"), type=value, default=None, help=info.help)


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        help=f"Chroma folder for an embedded database (default: $CLIPCLAP_DB, else ./{DEFAULT_DB})",
    )
    p.add_argument("--host", default=None, help="Chroma server host (instead of --db)")
    p.add_argument("--port", type=int, default=8000, help="Chroma server port (default 8000)")
    p.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default: {DEFAULT_COLLECTION})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipclap",
        description="CLIPCLAP embeddings: text, images and audio in one vector space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("download", help="fetch a model from the Hub into the cache")
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="Hub repo id (default: $CLIPCLAP_MODEL if it is a repo id, else antflydb/clipclap)",
    )
    for name, parse in (("revision", str), ("cache_dir", str)):
        _option_flag(p, name, parse)
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="trust the cached files (default: check each against its hash, ~1 s per GB)",
    )

    p = sub.add_parser(
        "info",
        help="where the model is, its files, dimension, and the providers in use and available",
    )
    _model_args(p)

    p = sub.add_parser("embed", help="embed inputs; print JSON lines (or save --npy)")
    p.add_argument("inputs", nargs="+", help="sentences, file paths or URLs")
    p.add_argument(
        "--as",
        "--modality",
        dest="modality",
        choices=["text", "image", "audio"],
        default=None,
        help="treat every input as this modality (--as text: a path-like string as text)",
    )
    p.add_argument("--npy", default=None, help="write the vectors to this .npy file instead")
    _model_args(p)

    p = sub.add_parser("index", help="embed every image, sound and text file into Chroma")
    p.add_argument("paths", nargs="+", help="files or folders (walked recursively)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove records of files that no longer exist under PATHS",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: added, replaced, unchanged, pruned, failed (with reasons)",
    )
    p.add_argument(
        "--window",
        type=_window_seconds,
        default=None,
        help=f"seconds per indexed window of long audio, at most {CLAP_WINDOW_S:g} (default "
        f"{CLAP_WINDOW_S:g})",
    )
    p.add_argument(
        "--frame-every",
        type=_positive_seconds,
        default=None,
        help="videos: embed a frame every this many seconds, each a moment (default 1)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: a Ray cluster (pip install "
        '"clipclap-integrations[ray]"), the same records',
    )
    p.add_argument(
        "--address",
        default=None,
        help="with --engine ray: the cluster to join (default: $RAY_ADDRESS, else a local Ray)",
    )
    p.add_argument(
        "--actors",
        type=_positive_int,
        default=None,
        help="with --engine ray: embedding actors (default 1), each of --threads threads",
    )
    _db_args(p)
    _model_args(p)

    p = sub.add_parser("search", help="search an index with a sentence, an image or a sound")
    p.add_argument("query", help="a sentence, or an image/audio file or URL")
    p.add_argument(
        "-k", "--top", type=_positive_int, default=10, help="results to show (default 10)"
    )
    p.add_argument(
        "--modality",
        choices=["text", "image", "audio", "video"],
        default=None,
        help="only return records of this modality (video: the moments and whole videos)",
    )
    p.add_argument(
        "--as",
        dest="query_as",
        choices=["text", "image", "audio"],
        default=None,
        help="treat the query as this modality",
    )
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    _db_args(p)
    _model_args(p)
    return parser


def cmd_download(args: argparse.Namespace) -> int:
    from .runtime.hub import download_model, is_repo_id

    model = args.model  # None: $CLIPCLAP_MODEL if that is a repo id, else antflydb/clipclap
    if model and Path(model).expanduser().is_dir():
        print(
            f"clipclap download: {model} is a local folder, not a Hub repo id: nothing to download",
            file=sys.stderr,
        )
        return 2
    if model and not is_repo_id(model):
        print(
            f"clipclap download: {model!r} is not a Hub repo id (owner/name), nor a local folder",
            file=sys.stderr,
        )
        return 2
    result = download_model(
        model,
        revision=args.revision,
        cache_dir=args.cache_dir,
        force_download=args.force,
        verify=args.verify,
    )
    if result.offline_reason:
        print(f"note: {result.offline_reason}; used the cached copy", file=sys.stderr)
    print(f"{result.repo_id}@{result.revision} = commit {result.commit}")
    print(f"folder: {result.folder}")
    for f in result.files:
        print(f"  {f.size:>14,}  {f.path}")
    state = "downloaded" if result.downloaded else "already in the cache"
    if result.verified and not result.downloaded:
        state += ", every file checked against its hash"
    print(f"  {result.total_size:>14,}  total ({state})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    e = make_embedder(args)
    # what this embedder's sessions run on (its smallest graph is loaded to ask onnxruntime)
    in_use = e.encoders.providers_in_use()
    folder = e.model_path
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    print(f"model:     {e.folder.source}")
    print(f"folder:    {folder}")
    print(f"revision:  {e.model_revision or '(local folder)'}")
    print(f"dimension: {e.dim}")
    print(f"providers in use:    {', '.join(in_use)}")
    print(f"providers available: {', '.join(ort.get_available_providers())}")
    print("files:")
    for p in files:
        print(f"  {p.stat().st_size:>14,}  {p.name}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    if args.modality is None:
        for raw in args.inputs:
            problem = path_problem(raw)
            if problem:
                print(
                    f"clipclap embed: {problem} (to embed this text itself, pass --as text)",
                    file=sys.stderr,
                )
                return 2
    e = make_embedder(args)
    # Classified once, so the modality printed is the one embedded (a URL whose content must
    # tell is fetched once, when embedded, and its item then knows).
    items = e.classify(list(args.inputs), args.modality)
    vectors = e.embed_classified(items)
    if args.npy:
        np.save(args.npy, vectors)
        print(
            f"wrote {vectors.shape[0]} x {vectors.shape[1]} vectors to {args.npy}", file=sys.stderr
        )
        return 0
    for raw, item, vector in zip(args.inputs, items, vectors, strict=True):
        print(
            json.dumps(
                {
                    "input": raw,
                    "modality": item.modality.value if item.modality else "?",
                    "embedding": [round(float(v), 7) for v in vector],
                }
            )
        )
    return 0


COMMANDS = {
    "download": cmd_download,
    "info": cmd_info,
    "embed": cmd_embed,
    "index": cmd_index,
    "search": cmd_search,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 1
    except KeyboardInterrupt:  # before index's own count of files done, or another command
        print(f"clipclap {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClipClapError as exc:
        print(f"clipclap {args.command}: {in_cli_terms(str(exc))}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"clipclap {args.command}: {in_cli_terms(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
