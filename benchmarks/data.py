"""The benchmark's model and inputs, generated deterministically into a cache folder.

Everything here is reproducible from the seeds below: the full-size synthetic CLIPCLAP (built
by ``clipclap_integrations.testing``), captions of 5-60 tokens, photo-like JPEG and PNG files
from 640x480 to 4000x3000 (some with an EXIF orientation, as phones write them) and music-like
audio files of 3-30 s (WAV and MP3, 44.1 kHz, mono and stereo). A second run reuses the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUTS_VERSION = 1
MODEL_SEED = 0
N_CAPTIONS = 256
AUDIO_RATE = 44_100

# Image sets: name -> (sizes cycled through, formats cycled through, count).
IMAGE_SETS: dict[str, tuple[tuple[tuple[int, int], ...], tuple[str, ...], int]] = {
    "img-640": (((640, 480), (480, 640)), ("JPEG", "PNG"), 64),
    "img-1280": (((1280, 960), (960, 1280), (1280, 720), (1024, 768)), ("JPEG", "PNG"), 64),
    "img-12mp": (((4000, 3000), (3000, 4000)), ("JPEG",), 32),
}
# Single files per (size, format) for the "where the time goes" breakdown.
BREAKDOWN_IMAGES: tuple[tuple[int, int, str], ...] = (
    (640, 480, "JPEG"),
    (640, 480, "PNG"),
    (1280, 960, "JPEG"),
    (1280, 960, "PNG"),
    (4000, 3000, "JPEG"),
    (4000, 3000, "PNG"),
)
N_AUDIO = 32

_WORD_LIST = (
    "a an the dog cat bird horse child woman man group of people walking running sitting "
    "standing near beside under over on in at with without red blue green yellow black white "
    "small large old young happy quiet loud bright dark street park beach river mountain forest "
    "city kitchen table chair window door car bicycle train boat plane sky cloud sun rain snow "
    "music guitar piano drum song voice singing playing talking laughing barking sound noise "
    "photo picture painting of and while during after before morning evening night summer "
    "winter autumn spring light shadow reflection water wave sand grass tree flower garden "
    "house building bridge road market crowd festival concert orchestra violin trumpet choir "
    "wooden glass metal stone soft warm cold wet dry fast slow gentle heavy distant close"
)
_WORDS = _WORD_LIST.split()
_PUNCT = (",", ".", "!", "?", ";", "-")


@dataclass(frozen=True)
class BenchInputs:
    """Paths and texts of every workload."""

    model: Path
    captions: list[str]
    images: dict[str, list[Path]]
    audio: list[Path]
    breakdown_images: list[Path]


def ensure_model(cache: Path, *, size: str = "full", seed: int = MODEL_SEED) -> Path:
    """The synthetic model folder in ``cache``, built with the project's builder if missing."""
    folder = cache / f"clipclap-{size}-seed{seed}"
    done = folder / ".complete"
    if done.exists():
        return folder
    print(f"building the {size} synthetic CLIPCLAP into {folder} (once; ~30 s, 2.5 GB RAM)")
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "clipclap_integrations.testing",
            "build",
            "--size",
            size,
            "--seed",
            str(seed),
            "--out",
            str(folder),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    done.write_text(f"built in {time.perf_counter() - start:.1f} s\n", encoding="utf-8")
    return folder


def ensure_inputs(cache: Path, model: Path, *, quick: bool = False) -> BenchInputs:
    """Generate (or reuse) the workloads under ``cache/inputs-v<N>``."""
    root = cache / f"inputs-v{INPUTS_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    captions = _captions(root, model)
    images = {name: _image_set(root, name, *spec) for name, spec in IMAGE_SETS.items()}
    breakdown = [
        _image_file(root / "breakdown", f"{w}x{h}", w, h, fmt, seed=9000 + i, orientation=1)
        for i, (w, h, fmt) in enumerate(BREAKDOWN_IMAGES)
    ]
    audio = _audio_set(root)
    if quick:
        images = {k: v[: max(8, len(v) // 4)] for k, v in images.items()}
    return BenchInputs(model, captions, images, audio, breakdown)


# --------------------------------------------------------------------------- captions


def _captions(root: Path, model: Path) -> list[str]:
    path = root / "captions.json"
    if path.exists():
        return list(json.loads(path.read_text(encoding="utf-8")))
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model / "tokenizer.json"))
    rng = np.random.default_rng(1)
    captions: list[str] = []
    for target in rng.integers(5, 61, size=N_CAPTIONS):
        words: list[str] = []
        text = ""
        while True:
            word = str(rng.choice(_WORDS))
            if words and rng.random() < 0.08:
                word = str(rng.choice(_PUNCT)) + " " + word
            candidate = " ".join([*words, word])
            if len(tok.encode(candidate, add_special_tokens=False).ids) > target:
                break
            words.append(word)
            text = candidate
        captions.append(text[:1].upper() + text[1:])
    path.write_text(json.dumps(captions, indent=1), encoding="utf-8")
    return captions


# --------------------------------------------------------------------------- images


def photo_like(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic HxWx3 uint8 picture with smooth shading, texture, edges and noise.

    Compresses like a photograph (about 2 bits per pixel as JPEG quality 90), so decoders do
    realistic work.
    """
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (height // 24 + 2, width // 24 + 2, 3), np.uint8))
    texture = np.asarray(small.resize((width, height), Image.BICUBIC), dtype=np.float32)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    phase = rng.uniform(0, 6.28, 3).astype(np.float32)
    shade = 110 + 80 * np.sin(3 * x + 2 * y + phase) * np.cos(2 * y - x + phase[::-1])
    canvas = Image.fromarray(np.clip(0.55 * shade + 0.45 * texture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        rx = int(rng.integers(width // 30, width // 5))
        ry = int(rng.integers(height // 30, height // 5))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((x0 - rx, y0 - ry, x0 + rx, y0 + ry), fill=fill)
    arr = np.asarray(canvas, dtype=np.float32)
    arr += rng.normal(0.0, 4.0, arr.shape).astype(np.float32)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _image_file(
    folder: Path, stem: str, width: int, height: int, fmt: str, *, seed: int, orientation: int
) -> Path:
    from PIL import Image

    suffix = ".jpg" if fmt == "JPEG" else ".png"
    path = folder / f"{stem}{suffix}"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    # An EXIF-rotated photo is stored sideways: the upright picture is width x height.
    stored_w, stored_h = (height, width) if orientation in (6, 8) else (width, height)
    image = Image.fromarray(photo_like(stored_w, stored_h, seed))
    tmp = path.with_suffix(".tmp" + suffix)
    if fmt == "JPEG":
        exif = Image.Exif()
        if orientation != 1:
            exif[0x0112] = orientation
        image.save(tmp, "JPEG", quality=90, exif=exif.tobytes())
    else:
        image.save(tmp, "PNG", compress_level=6)
    os.replace(tmp, path)
    return path


def _image_set(
    root: Path, name: str, sizes: tuple[tuple[int, int], ...], formats: tuple[str, ...], n: int
) -> list[Path]:
    folder = root / name
    paths = []
    for i in range(n):
        width, height = sizes[i % len(sizes)]
        fmt = formats[(i // len(sizes)) % len(formats)]
        # Phones store many photos sideways with an orientation tag: one large JPEG in four.
        orientation = 6 if fmt == "JPEG" and width * height >= 4_000_000 and i % 4 == 3 else 1
        stem = f"{i:03d}_{width}x{height}"
        paths.append(
            _image_file(
                folder, stem, width, height, fmt, seed=hash_seed(name, i), orientation=orientation
            )
        )
    return paths


def hash_seed(name: str, i: int) -> int:
    """A stable seed from a set name and an index (``hash()`` is salted per process)."""
    return int.from_bytes(name.encode("utf-8")[:8].ljust(8, b"\0"), "little") % 100_000 + i


# --------------------------------------------------------------------------- audio


def music_like(seconds: float, channels: int, seed: int, rate: int = AUDIO_RATE) -> np.ndarray:
    """Notes with harmonics and decaying envelopes over soft noise, (frames, channels) float32."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    out = np.zeros((n, channels), dtype=np.float64)
    note_len = rng.uniform(0.2, 0.6)
    for start in np.arange(0.0, seconds, note_len):
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        a, b = int(start * rate), min(n, int((start + 2.5 * note_len) * rate))
        seg = t[a:b] - start
        env = np.exp(-seg * rng.uniform(2, 6)) * (1 - np.exp(-seg * 200))
        tone = sum(np.sin(2 * np.pi * f0 * k * seg) / k**1.3 for k in range(1, 7))
        for c in range(channels):
            pan = 0.5 + (0.3 if c else -0.3) * rng.uniform(-1, 1)
            out[a:b, c] += 0.18 * pan * env * tone
    noise = rng.standard_normal((n, channels)) * 0.01
    return np.clip(out + noise, -1.0, 1.0).astype(np.float32)


def _audio_set(root: Path) -> list[Path]:
    import soundfile as sf

    folder = root / "audio"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    # 3-30 s, never a whole multiple of 10 s (a 1-sample tail window is no real workload).
    durations = np.round(np.linspace(3.0, 29.7, N_AUDIO) + 0.13, 2)
    rng.shuffle(durations)
    paths = []
    for i, seconds in enumerate(durations):
        fmt = ("WAV", "MP3")[i % 2]
        channels = (2, 1)[(i // 2) % 2]
        suffix = ".wav" if fmt == "WAV" else ".mp3"
        path = folder / f"{i:03d}_{seconds:05.2f}s_{'stereo' if channels == 2 else 'mono'}{suffix}"
        if not path.exists():
            data = music_like(float(seconds), channels, seed=500 + i)
            tmp = path.with_suffix(".tmp" + suffix)
            kwargs = {"subtype": "PCM_16"} if fmt == "WAV" else {"subtype": "MPEG_LAYER_III"}
            sf.write(tmp, data, AUDIO_RATE, format=fmt, **kwargs)
            os.replace(tmp, path)
        paths.append(path)
    return paths
