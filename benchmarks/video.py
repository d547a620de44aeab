"""Video benchmark (issue 17, Speed): embed_video of a generated 1280x720 30 fps H.264 + AAC
video at 1 frame/s against the model's own time on prepared tensors for the same frames and
windows; where the time goes (demux/decode, RGB conversion, preprocessing, model), what
keyframes_only buys, peak RSS.

    python -m benchmarks.video --minutes 10 [--model DIR] [--cache benchmarks/cache]

Run it under the suite lock (flock /work/tools/suite.lock ...). Not a test.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _video(cache: Path, minutes: float) -> Path:
    from clipclap_integrations.testing.video import make_video

    path = cache / f"video-{minutes:g}min-720p30.mp4"
    if not path.exists():
        colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
        sounds: list[float | str | None] = [440.0, "sweep", "noise", 880.0]
        segments = [(30.0, colors[i % 4], sounds[i % 4]) for i in range(max(1, round(minutes * 2)))]
        tmp = path.with_suffix(".part.mp4")
        make_video(
            tmp, segments, size=(1280, 720), fps=30, moving=True, options={"preset": "veryfast"}
        )
        tmp.rename(path)
    return path


def _model(cache: Path, model: str | None) -> Path:
    if model:
        return Path(model)
    out = cache / "clipclap-full"
    if not (out / "visual_model.onnx").exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "clipclap_integrations.testing"),
                *("build", "--size", "full", "--out", str(out)),
            ],
            check=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache", default="benchmarks/cache")
    args = parser.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    video = _video(cache, args.minutes)
    model = _model(cache, args.model)

    from clipclap_integrations import ClipClapEmbedder
    from clipclap_integrations.media.soundtrack import soundtrack_windows
    from clipclap_integrations.media.video import iter_frames, probe_video
    from clipclap_integrations.types import Modality

    info = probe_video(video)
    print(f"video: {video.name} {info.width}x{info.height} {info.fps} fps {info.duration_s} s")
    embedder = ClipClapEmbedder(model)
    image, audio = embedder.pipelines[Modality.IMAGE], embedder.pipelines[Modality.AUDIO]

    # stage by stage, one after the other
    t = time.perf_counter()
    frames = 0
    for _ in iter_frames(video, 1.0):  # demux + decode of every frame + RGB of the sampled
        frames += 1
    decode = time.perf_counter() - t
    t = time.perf_counter()
    keyframes = sum(1 for _ in iter_frames(video, keyframes_only=True))
    keyframe_decode = time.perf_counter() - t
    pixels, features = [], []
    t = time.perf_counter()
    from clipclap_integrations.inputs import Item

    for f in iter_frames(video, 1.0):
        pixels.append(image.load(Item(Modality.IMAGE, f.rgb), 0))  # type: ignore[attr-defined]
    prep_frames = time.perf_counter() - t - decode
    t = time.perf_counter()
    pre = audio.preprocessor  # type: ignore[attr-defined]
    for _, _, w in soundtrack_windows(video, rate=48_000, window_s=10.0):
        features.append(pre([w])[0])
    prep_audio = time.perf_counter() - t
    size = embedder.batch_size
    embedder.embed_images([pixels[0].transpose(1, 2, 0) * 0 + 0.5])  # sessions created
    embedder.embed_audio([np.ones(4800, np.float32) * 0.1])
    t = time.perf_counter()
    for s in range(0, len(pixels), size):
        embedder.encoders.project(Modality.IMAGE, {"pixel_values": np.stack(pixels[s : s + size])})
    for s in range(0, len(features), size):
        embedder.encoders.project(
            Modality.AUDIO, {"input_features": np.stack(features[s : s + size])}
        )
    limit = time.perf_counter() - t
    del pixels, features

    t = time.perf_counter()
    moments = embedder.embed_video(video)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    quick = embedder.embed_video(video, keyframes_only=True)
    ours_key = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = info.duration_s or 0.0
    print(f"frames sampled {frames}, keyframes {keyframes}, moments {len(moments)}")
    print(
        f"decode (all frames, RGB of sampled): {decode:.1f} s; "
        f"keyframes only {keyframe_decode:.1f} s"
    )
    print(f"frame preprocessing {prep_frames:.1f} s, soundtrack decode+features {prep_audio:.1f} s")
    print(f"model on prepared tensors (limit): {limit:.1f} s")
    print(
        f"embed_video end to end: {ours:.1f} s = {ours / limit:.2f}x limit; "
        f"{seconds / ours:.1f} video-s per s"
    )
    print(f"embed_video keyframes_only: {ours_key:.1f} s ({len(quick)} moments)")
    print(f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
