"""Single-purpose benchmark processes: memory, a 10,000-embedding soak, cold start, and
where the preprocessing time goes.

Each runs as ``python -m benchmarks.probes <probe> --cache DIR [...]`` in a fresh process and
prints one JSON object as its last stdout line; the orchestrator also reads the process's peak
RSS from outside (``wait4``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

COLD_START_CODE = """
import sys
from clipclap_integrations import ClipClapEmbedder
vector = ClipClapEmbedder(sys.argv[1]).embed_text(["a dog barking in the rain"])
assert vector.shape == (1, 512)
sys.stdout.write("vector\\n")
sys.stdout.flush()
with open("/proc/self/status", encoding="ascii") as status:  # this process's own peak RSS
    sys.stdout.write(next(l for l in status if l.startswith("VmHWM:")))
"""


def rss_mb() -> float:
    return _status("VmRSS")


def hwm_mb() -> float:
    return _status("VmHWM")


def _status(key: str) -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _inputs(cache: Path) -> Any:
    from benchmarks.data import ensure_inputs, ensure_model

    return ensure_inputs(cache, ensure_model(cache))


# --------------------------------------------------------------------------- memory


def memory(cache: Path, modality: str) -> dict[str, Any]:
    """Embed the batch-32 workloads of one modality (or all three) twice; report RSS."""
    from clipclap_integrations import ClipClapEmbedder

    inputs = _inputs(cache)
    e = ClipClapEmbedder(inputs.model, batch_size=32)
    plan: list[tuple[Callable[[list[Any]], np.ndarray], list[Any]]] = []
    if modality in ("text", "all"):
        plan.append((e.embed_text, inputs.captions))
    if modality in ("image", "all"):
        plan.append((e.embed_images, [str(p) for p in inputs.images["img-1280"]]))
        plan.append((e.embed_images, [str(p) for p in inputs.images["img-12mp"]]))
    if modality in ("audio", "all"):
        plan.append((e.embed_audio, [str(p) for p in inputs.audio]))
    samples = []
    for _ in range(2):
        for method, items in plan:
            for s in range(0, len(items), 32):
                method(items[s : s + 32])
            samples.append(round(rss_mb(), 1))
    return {"modality": modality, "rss_mb": samples, "hwm_mb": hwm_mb()}


# --------------------------------------------------------------------------- soak


def soak(cache: Path, modality: str, total: int, every: int) -> dict[str, Any]:
    """Embed ``total`` items in calls of varying size; RSS every ``every`` embeddings."""
    from clipclap_integrations import ClipClapEmbedder

    inputs = _inputs(cache)
    e = ClipClapEmbedder(inputs.model)
    rng = np.random.default_rng(3)
    pool: list[Any]
    if modality == "text":
        pool, method = list(inputs.captions), e.embed_text
    elif modality == "image":
        pool, method = [str(p) for p in inputs.images["img-640"]], e.embed_images
    else:
        pool, method = [str(p) for p in inputs.audio[:8]], e.embed_audio
    done = 0
    next_sample = every
    samples: list[tuple[int, float]] = [(0, round(rss_mb(), 1))]
    t0 = time.perf_counter()
    while done < total:
        n = int(min(total - done, rng.integers(1, 65)))
        start = int(rng.integers(0, len(pool)))
        call = [pool[(start + k) % len(pool)] for k in range(n)]
        if modality == "text":  # new strings every call: no cache can make it cheaper
            call = [f"{t} {done + k}" for k, t in enumerate(call)]
        vectors = method(call)
        assert vectors.shape == (n, 512)
        done += n
        if done >= next_sample:
            samples.append((done, round(rss_mb(), 1)))
            next_sample += every
    first = next((r for n, r in samples if n >= min(1000, total)), samples[-1][1])
    middle = next((r for n, r in samples if n >= total // 2), samples[-1][1])
    return {
        "modality": modality,
        "embeddings": done,
        "seconds": round(time.perf_counter() - t0, 1),
        "samples": samples,
        "rss_after_1000_mb": first,
        "rss_end_mb": samples[-1][1],
        "growth_after_1000_mb": round(samples[-1][1] - first, 1),
        "growth_second_half_mb": round(samples[-1][1] - middle, 1),
        "hwm_mb": hwm_mb(),
    }


# --------------------------------------------------------------------------- breakdown


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def breakdown(cache: Path, reps: int) -> dict[str, Any]:
    """Single-threaded cost of each preprocessing stage, per file (ms)."""
    from PIL import Image

    from clipclap_integrations import ClipClapEmbedder
    from clipclap_integrations.media.audio import decode_audio, to_mono
    from clipclap_integrations.media.image import to_rgb

    inputs = _inputs(cache)
    exact = ClipClapEmbedder(inputs.model)
    fast = ClipClapEmbedder(inputs.model, fast_jpeg=True)
    pre = exact.image_preprocessor
    images = []
    for path in [*inputs.breakdown_images, *inputs.images["img-12mp"][:4]]:
        data = path.read_bytes()

        def decode(data: bytes = data) -> Any:
            im = Image.open(io.BytesIO(data))
            im.load()
            return im

        decoded = decode()
        upright = _upright(decoded)
        rgb = to_rgb(upright)
        size = pre.resized_size(*rgb.size)
        resized = rgb.resize(size, resample=pre.settings.resample)
        row: dict[str, Any] = {
            "file": path.name,
            "format": decoded.format,
            "size": f"{decoded.size[0]}x{decoded.size[1]}",
            "bytes": len(data),
            "read_ms": _median_ms(path.read_bytes, reps),
            "decode_ms": _median_ms(decode, reps),
            "exif_transpose_ms": _median_ms(lambda d=decoded: _upright(d), reps),
            "to_rgb_ms": _median_ms(lambda u=upright: to_rgb(u), reps),
            "resize_ms": _median_ms(
                lambda r=rgb, s=size: r.resize(s, resample=pre.settings.resample), reps
            ),
            "crop_normalize_ms": _median_ms(lambda r=resized: pre.pixels(r), reps),
            "total_ms": _median_ms(lambda p=path: exact.preprocess_images([p]), reps),
        }
        if decoded.format == "JPEG":
            exact_px = exact.preprocess_images([path])
            fast_px = fast.preprocess_images([path])
            row["fast_jpeg_total_ms"] = _median_ms(lambda p=path: fast.preprocess_images([p]), reps)
            row["fast_jpeg_pixel_max_abs"] = float(np.max(np.abs(exact_px - fast_px)))
        images.append(row)

    audio = []
    apre = exact.audio_preprocessor
    for path in inputs.audio[:4]:
        samples, rate = decode_audio(path)
        mono = to_mono(samples)
        wave = apre.prepare(mono, rate)
        windows = apre.windows(wave, "mean")
        audio.append(
            {
                "file": path.name,
                "seconds": round(mono.shape[0] / rate, 2),
                "windows": len(windows),
                "decode_ms": _median_ms(lambda p=path: decode_audio(p), reps),
                "to_mono_ms": _median_ms(lambda s=samples: to_mono(s), reps),
                "resample_ms": _median_ms(lambda m=mono, r=rate: apre.prepare(m, r), reps),
                "features_ms": _median_ms(lambda w=windows: apre(w), reps),
                "total_ms": _median_ms(lambda p=path: _audio_total(apre, p), reps),
            }
        )
    tpre = exact.text_preprocessor
    captions = inputs.captions
    text = {
        "captions": len(captions),
        "tokenize_ms_per_caption": round(
            _median_ms(lambda: tpre(captions), reps) / len(captions), 4
        ),
    }
    return {"images": images, "audio": audio, "text": text}


def _upright(image: Any) -> Any:
    """What the core does: read the EXIF orientation, rotate only when it says so."""
    from PIL import ImageOps

    orientation = image.getexif().get(0x0112, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def _audio_total(apre: Any, path: Path) -> np.ndarray:
    from clipclap_integrations.media.audio import decode_audio, to_mono

    samples, rate = decode_audio(path)
    return apre(apre.windows(apre.prepare(to_mono(samples), rate), "mean"))


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.probes")
    parser.add_argument("probe", choices=("memory", "soak", "breakdown"))
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--modality", default="text")
    parser.add_argument("--total", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    if args.probe == "memory":
        result = memory(args.cache, args.modality)
    elif args.probe == "soak":
        result = soak(args.cache, args.modality, args.total, args.every)
    else:
        result = breakdown(args.cache, args.reps)
    result["hwm_mb"] = hwm_mb()  # this process's own peak RSS (see run._peak)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
