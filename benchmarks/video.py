"""Video benchmark (issue 17, Speed): embed_video of a generated 1280x720 30 fps H.264 + AAC
video at 1 frame/s against the model's own time on prepared tensors for the same frames and
windows; where the time goes (demux, decode, RGB conversion, preprocessing, soundtrack,
model), what keyframes_only buys, and peak RSS with its course during the run.

    python -m benchmarks.video --minutes 10 [--model DIR] [--cache benchmarks/cache]
        [--decoder-threads N] [--no-spinning] [--rounds 1] [--size 1280x720] [--index]

Run it under the suite lock (flock /work/tools/suite.lock ...). Not a test. ``embed_video``
runs in a fresh process each time (its peak RSS is its own), after a warm-up that creates
the sessions, as the limit's are created before it is timed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def _video(cache: Path, minutes: float, size: tuple[int, int] = (1280, 720)) -> Path:
    from clipclap_integrations.testing.video import make_video

    path = cache / f"video-{minutes:g}min-{size[0]}x{size[1]}p30.mp4"
    if not path.exists():
        colors = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
        sounds: list[float | str | None] = [440.0, "sweep", "noise", 880.0]
        segments = [(30.0, colors[i % 4], sounds[i % 4]) for i in range(max(1, round(minutes * 2)))]
        tmp = path.with_suffix(".part.mp4")
        make_video(tmp, segments, size=size, fps=30, moving=True, options={"preset": "veryfast"})
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


def _status(key: str) -> float:
    """A ``/proc/self/status`` figure (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Clock:
    """Wall and CPU (all threads of the process) seconds since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _tune(args: Any) -> None:
    """The experiment knobs: decoder threads, onnxruntime's spinning."""
    from clipclap_integrations.media import video

    video.DECODER_THREADS = args.decoder_threads
    if args.no_spinning:
        from clipclap_integrations.runtime import sessions

        plain = sessions.session_options

        def no_spin(config: Any) -> Any:
            options = plain(config)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            return options

        sessions.session_options = no_spin  # type: ignore[assignment]


def _child(args: argparse.Namespace) -> None:
    """Time ``embed_video`` in this fresh process; print its figures as JSON."""
    _tune(args)
    from clipclap_integrations import ClipClapEmbedder

    embedder = ClipClapEmbedder(args.model)
    embedder.embed_images([np.full((224, 224, 3), 128, np.uint8)])  # the sessions exist
    embedder.embed_audio([np.full(4800, 0.1, np.float32)])
    before = _status("VmRSS")
    course: list[tuple[float, float]] = []
    done = threading.Event()
    clock = _Clock()

    def sample() -> None:
        while not done.wait(0.5):
            course.append((clock.read()[0], _status("VmRSS")))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    moments = embedder.embed_video(args.video, keyframes_only=args.keyframes)
    wall, cpu = clock.read()
    done.set()
    watcher.join()
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "moments": len(moments.vectors),
                "rss_before": before,
                "hwm": _status("VmHWM"),
                "course": course,
            }
        )
    )


def _ours(args: argparse.Namespace, video: Path, model: Path, keyframes: bool) -> dict[str, Any]:
    command = [
        *(sys.executable, "-m", "benchmarks.video", "--child"),
        *("--video", str(video), "--model", str(model)),
        *("--decoder-threads", str(args.decoder_threads)),
    ]
    command += ["--keyframes"] * keyframes + ["--no-spinning"] * args.no_spinning
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _index_cli(video: Path, model: Path) -> tuple[float, dict[str, Any]]:
    """``clipclap index VIDEO`` into a fresh Chroma folder, timed from outside: process start,
    imports, model load, decoding, the model and the Chroma writes. (wall s, its summary)."""
    import tempfile

    with tempfile.TemporaryDirectory() as db:
        command = [
            *(sys.executable, "-m", "clipclap_integrations", "index", str(video)),
            *("--db", db, "--model", str(model), "--json"),
        ]
        start = time.perf_counter()
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return time.perf_counter() - start, json.loads(out)


def _stages(video: Path, embedder: Any) -> tuple[dict[str, tuple[float, float]], list, list]:
    """Each stage alone, one after the other: (wall, cpu) seconds, and the prepared rows."""
    import av

    from clipclap_integrations.inputs import Item
    from clipclap_integrations.media import video as media
    from clipclap_integrations.media.soundtrack import soundtrack_windows
    from clipclap_integrations.types import Modality

    out: dict[str, tuple[float, float]] = {}
    clock = _Clock()
    with av.open(str(video)) as container:
        for _ in container.demux(container.streams.video[0]):
            pass
    out["demux (video packets)"] = clock.read()
    clock = _Clock()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = media.DECODER_THREADS
        sampled = []
        for n, frame in enumerate(container.decode(stream)):
            if n % 30 == 0 and len(sampled) < 30:
                sampled.append(frame)
    out["decode every frame"] = clock.read()
    clock = _Clock()
    for frame in sampled:
        frame.to_ndarray(format="rgb24")
    wall, cpu = clock.read()
    del sampled
    share = 600 / 30  # 30 frames converted, scaled to 600
    out["RGB conversion (600 frames, from 30)"] = (wall * share, cpu * share)
    image, audio = embedder.pipelines[Modality.IMAGE], embedder.pipelines[Modality.AUDIO]
    clock = _Clock()
    rgbs = [f.rgb for f in media.iter_frames(video, 1.0)]
    out["iter_frames: decode (non-ref skipped) + RGB"] = clock.read()
    clock = _Clock()
    pixels = [image.load(Item(Modality.IMAGE, rgb), 0) for rgb in rgbs]
    out["frame preprocessing (Pillow resize, crop, normalize)"] = clock.read()
    del rgbs
    clock = _Clock()
    windows = [w for _, _, w in soundtrack_windows(video, rate=48_000, window_s=10.0)]
    out["soundtrack decode + resample"] = clock.read()
    clock = _Clock()
    pre = audio.preprocessor
    features = [pre([w])[0] for w in windows]
    out["soundtrack features"] = clock.read()
    clock = _Clock()
    keys = sum(1 for _ in media.iter_frames(video, keyframes_only=True))
    out[f"keyframes only: decode + RGB ({keys} keyframes)"] = clock.read()
    return out, pixels, features


def _limit(model: Path, size: int, pixels: list, features: list) -> tuple[float, float]:
    """The limit: raw onnxruntime sessions with default options (as ``contenders.Limit``)
    on the prepared rows, in batches of ``size`` (audio 8 windows a run, as ours)."""
    import onnxruntime as ort

    def pair(prefix: str) -> tuple[Any, Any]:
        return tuple(  # type: ignore[return-value]
            ort.InferenceSession(str(model / f"{prefix}_{g}.onnx"), ort.SessionOptions())
            for g in ("model", "projection")
        )

    visual, audio = pair("visual"), pair("audio")

    def run(graphs: tuple[Any, Any], feed: str, rows: np.ndarray) -> np.ndarray:
        pooled = graphs[0].run(["pooler_output"], {feed: rows})[0]
        return graphs[1].run(None, {graphs[1].get_inputs()[0].name: pooled})[0]

    run(visual, "pixel_values", np.stack(pixels[:1]))  # warm, as ours is
    run(audio, "input_features", np.stack(features[:1]))
    clock = _Clock()
    for s in range(0, len(pixels), size):
        run(visual, "pixel_values", np.stack(pixels[s : s + size]))
    for s in range(0, len(features), 8):
        run(audio, "input_features", np.stack(features[s : s + 8]))
    return clock.read()


def _model_ours(embedder: Any, pixels: list, features: list) -> tuple[float, float]:
    """The model alone on the prepared rows as the embedder runs it (parallel runs)."""
    from clipclap_integrations.types import Modality

    size = embedder.batch_size
    embedder.embed_images([np.full((224, 224, 3), 128, np.uint8)])  # sessions created
    embedder.embed_audio([np.full(4800, 0.1, np.float32)])
    clock = _Clock()
    for s in range(0, len(pixels), size):
        embedder.encoders.project(Modality.IMAGE, {"pixel_values": np.stack(pixels[s : s + size])})
    for s in range(0, len(features), size):
        embedder.encoders.project(
            Modality.AUDIO, {"input_features": np.stack(features[s : s + size])}
        )
    return clock.read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache", default="benchmarks/cache")
    parser.add_argument("--size", default="1280x720", help="frame size of the generated video")
    parser.add_argument("--decoder-threads", type=int, default=1, help="0: FFmpeg decides")
    parser.add_argument("--no-spinning", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="limit/ours pairs")
    parser.add_argument("--no-stages", action="store_true", help="only limit and ours")
    parser.add_argument("--index", action="store_true", help="also time `clipclap index`")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--keyframes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    video = _video(cache, args.minutes, (width, height))
    model = _model(cache, args.model)
    _tune(args)

    from clipclap_integrations import ClipClapEmbedder
    from clipclap_integrations.media.video import probe_video

    info = probe_video(video)
    seconds = info.duration_s or 0.0
    print(f"video: {video.name} {info.width}x{info.height} {info.fps} fps {seconds} s")
    print(f"decoder threads {args.decoder_threads or 'auto'}, spinning {not args.no_spinning}")
    embedder = ClipClapEmbedder(model)
    stages, pixels, features = _stages(video, embedder)
    print(f"{len(pixels)} frames, {len(features)} windows; stages alone (wall s / CPU s):")
    if not args.no_stages:
        for name, (wall, cpu) in stages.items():
            print(f"  {name:58s} {wall:6.1f} / {cpu:6.1f}")
    for round_ in range(args.rounds):
        wall, cpu = _limit(model, embedder.batch_size, pixels, features)
        print(
            f"[{round_}] model on prepared tensors, raw default sessions (limit): {wall:.1f} s, "
            f"CPU {cpu:.1f} s"
        )
        alone = _model_ours(embedder, pixels, features)
        print(
            f"[{round_}] model on prepared tensors, our parallel runs ({embedder.encoders.runs}):"
            f" {alone[0]:.1f} s, CPU {alone[1]:.1f} s"
        )
        ours = _ours(args, video, model, keyframes=False)
        print(
            f"[{round_}] embed_video end to end: {ours['wall']:.1f} s, CPU {ours['cpu']:.1f} s "
            f"= {ours['wall'] / wall:.2f}x limit ({ours['wall'] / alone[0]:.2f}x our model "
            f"alone); {seconds / ours['wall']:.1f} video-s per s; "
            f"{ours['moments']} moments"
        )
        course = ours["course"]
        marks = [course[int(f * (len(course) - 1))] for f in (0.1, 0.25, 0.5, 0.75, 1.0)] or []
        print(
            f"[{round_}] peak RSS {ours['hwm']:.0f} MB (sessions warm, before the video: "
            f"{ours['rss_before']:.0f} MB); RSS during the run: "
            + ", ".join(f"{t:.0f} s {r:.0f} MB" for t, r in marks)
        )
    if args.index:
        wall, summary = _index_cli(video, model)
        print(
            f"clipclap index (process start to exit, Chroma writes included): {wall:.1f} s; "
            f"{summary['records_in_collection']} records"
        )
    quick = _ours(args, video, model, keyframes=True)
    print(
        f"embed_video keyframes_only: {quick['wall']:.1f} s, CPU {quick['cpu']:.1f} s "
        f"({quick['moments']} moments); peak RSS {quick['hwm']:.0f} MB"
    )


if __name__ == "__main__":
    main()
