"""Indexing benchmark: ``clipclap index`` against ``ClipClapEmbedder.embed`` on the same items.

    python -m benchmarks indexing [--sizes tiny full] [--files 400] [--rerun-files 10000]

Generates (once, deterministically, under ``--cache``) a mixed folder: photo-like JPEGs, WAVs
of 2-25 s (mono and stereo, 44.1 kHz; long ones are several 10 s windows) and text notes of one
to a few chunks. For each model size it times, in fresh processes, each repetition:

* ``index``: ``python -m clipclap_integrations index FOLDER --db NEW_DB`` as a subprocess,
  from process start to exit (model load and the Chroma writes included);
* ``embed``: one process that constructs ``ClipClapEmbedder`` and embeds the same items (the
  images and sounds by path, the notes' chunks as text; long sounds by their windows, as the
  index does); timed from construction to the last vector (``import`` time reported apart).

and prints the throughput ratio ``embed time / index time`` (targets: >= 0.95 with the
full-size model, >= 0.75 with the tiny one). Then it indexes ``--rerun-files`` small files and
times a re-run over the unchanged folder (target < 10 s). Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data import AUDIO_RATE, ensure_model, music_like, photo_like

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "fixtures" / "clipclap-tiny"
FOLDER_VERSION = 1
SENTENCES = (
    "The harbour woke before dawn and the boats slid out past the breakwater.",
    "Gulls followed them, screaming for scraps over the grey water.",
    "By nine the market was loud with bargaining over crates of mackerel.",
    "A single enormous halibut drew a crowd of children and old fishermen.",
    "At noon it rained, and everyone went home to eat soup by the fire.",
    "The choir practised in the chapel while a violin played somewhere upstairs.",
    "A red bicycle leaned against the wall of the bakery on the corner.",
    "Snow fell softly on the garden, covering the roses and the stone bench.",
)


# --------------------------------------------------------------------------- the folder
def mixed_folder(cache: Path, n_files: int) -> Path:
    """60 % JPEG photos (800x600 and 1280x960), 20 % WAVs of 2-25 s, 20 % notes."""
    import soundfile as sf
    from PIL import Image

    root = cache / f"indexing-v{FOLDER_VERSION}" / f"mixed-{n_files}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "photos").mkdir(parents=True)
    (root / "sounds").mkdir()
    (root / "notes").mkdir()
    n_images, n_sounds = n_files * 3 // 5, n_files // 5
    n_notes = n_files - n_images - n_sounds
    sizes = ((800, 600), (1280, 960), (600, 800))
    for i in range(n_images):
        w, h = sizes[i % len(sizes)]
        Image.fromarray(photo_like(w, h, seed=20_000 + i)).save(
            root / "photos" / f"photo-{i:04d}.jpg", "JPEG", quality=90
        )
    durations = np.round(np.linspace(2.0, 25.0, n_sounds), 2)
    np.random.default_rng(3).shuffle(durations)
    for i, seconds in enumerate(durations):
        channels = 2 if i % 3 == 0 else 1
        data = music_like(float(seconds), channels, seed=30_000 + i)
        sf.write(root / "sounds" / f"sound-{i:04d}.wav", data, AUDIO_RATE, subtype="PCM_16")
    rng = np.random.default_rng(5)
    for i in range(n_notes):
        picked = rng.choice(len(SENTENCES), size=int(rng.integers(1, 9)))
        text = " ".join(SENTENCES[k] for k in picked)
        (root / "notes" / f"note-{i:04d}.txt").write_text(text, encoding="utf-8")
    done.write_text("ok\n", encoding="utf-8")
    return root


def small_files(cache: Path, n_files: int) -> Path:
    """``n_files`` small notes and tiny PNGs (the re-run workload)."""
    from PIL import Image

    root = cache / f"indexing-v{FOLDER_VERSION}" / f"small-{n_files}"
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n_files):
        folder = root / f"part-{i // 1000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 2:
            (folder / f"note-{i:05d}.txt").write_text(
                f"Note {i}. {SENTENCES[i % len(SENTENCES)]}", encoding="utf-8"
            )
        else:
            pixels = np.full((24, 32, 3), (i * 7 % 256, i * 13 % 256, i % 256), np.uint8)
            Image.fromarray(pixels).save(folder / f"pic-{i:05d}.png")
    done.write_text("ok\n", encoding="utf-8")
    return root


# --------------------------------------------------------------------------- the contenders
EMBED_SCRIPT = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.inputs.files import read_text_file
from clipclap_integrations.media.chunking import chunk_text
t1 = time.perf_counter()
root = Path(sys.argv[1])
files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
e = ClipClapEmbedder(sys.argv[2])
images = [p for p in files if p.suffix == ".jpg"]
sounds = [p for p in files if p.suffix == ".wav"]
pre = e.text_preprocessor
texts = [
    c.text
    for p in files
    if p.suffix == ".txt"
    for c in chunk_text(read_text_file(p), pre.count_tokens, token_offsets=pre.token_offsets)
]
n = len(e.embed(images + sounds + texts))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "embed_s": t2 - t1, "vectors": n}))
"""


def run_index(folder: Path, model: Path, db: Path) -> tuple[float, dict]:
    env = {**os.environ, "CLIPCLAP_MODEL": str(model), "HF_HUB_OFFLINE": "1"}
    env.pop("CLIPCLAP_PROGRESS", None)
    cmd = [sys.executable, "-m", "clipclap_integrations", "index", str(folder), "--db", str(db)]
    start = time.perf_counter()
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"clipclap index failed ({done.returncode}):\n{done.stderr}")
    return elapsed, json.loads(done.stdout)


def run_embed(folder: Path, model: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", EMBED_SCRIPT, str(folder), str(model)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def compare(folder: Path, model: Path, reps: int, label: str) -> float:
    ratios = []
    for rep in range(reps):
        with tempfile.TemporaryDirectory(prefix="clipclap-bench-db-") as tmp:
            index_s, summary = run_index(folder, model, Path(tmp) / "db")
        embed = run_embed(folder, model)
        ratio = embed["embed_s"] / index_s
        ratios.append(ratio)
        print(
            f"  {label} rep {rep + 1}: index {index_s:6.2f} s ({len(summary['added'])} files, "
            f"{summary['records_written']} records, {len(summary['failed'])} failed) | embed "
            f"{embed['embed_s']:6.2f} s + import {embed['import_s']:.2f} s "
            f"({embed['vectors']} vectors) | ratio {ratio:.3f}",
            flush=True,
        )
    return float(np.median(ratios))


def rerun(folder: Path, model: Path) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="clipclap-bench-db-") as tmp:
        first_s, summary = run_index(folder, model, Path(tmp) / "db")
        again_s, again = run_index(folder, model, Path(tmp) / "db")
    assert len(again["unchanged"]) == len(summary["added"]), again
    return first_s, again_s, len(again["unchanged"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks indexing", description=__doc__)
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache")
    p.add_argument("--sizes", nargs="+", choices=["tiny", "full"], default=["tiny", "full"])
    p.add_argument("--files", type=int, default=400, help="files in the mixed folder")
    p.add_argument("--reps", type=int, default=2, help="repetitions per model (median ratio)")
    p.add_argument("--rerun-files", type=int, default=10_000, help="0: no re-run measurement")
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    folder = mixed_folder(args.cache, args.files)
    print(f"mixed folder: {folder} ({args.files} files)", flush=True)
    results = {}
    targets = {"tiny": 0.75, "full": 0.95}
    for size in args.sizes:
        model = TINY if size == "tiny" else ensure_model(args.cache, size="full")
        results[size] = compare(folder, model, args.reps, size)
    if args.rerun_files:
        small = small_files(args.cache, args.rerun_files)
        first_s, again_s, n = rerun(small, TINY)
        print(
            f"  re-run: first index {first_s:.2f} s, "
            f"re-run over {n} unchanged files {again_s:.2f} s"
        )
        results["rerun_s"] = again_s
    print("\nsummary (throughput of clipclap index / ClipClapEmbedder.embed):")
    for size in args.sizes:
        verdict = "met" if results[size] >= targets[size] else "MISSED"
        print(f"  {size:5s} model: {results[size]:.3f} (target >= {targets[size]}) {verdict}")
    if args.rerun_files:
        verdict = "met" if results["rerun_s"] < 10 else "MISSED"
        print(
            f"  re-run of {args.rerun_files} unchanged files: {results['rerun_s']:.2f} s "
            f"(target < 10 s) {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
