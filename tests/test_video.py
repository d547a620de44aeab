"""Video (the ``video`` extra, PyAV): detection, decoding, moments and their parity with the
image and audio paths, bad videos. Every video is generated here (``testing.video``); every
reference frame or track is decoded independently, with PyAV directly."""

from __future__ import annotations

import base64
import builtins
import itertools
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from inputs_media import VIDEO_SEGMENTS, frame_at  # noqa: E402

from clipclap_integrations import (  # noqa: E402
    Audio,
    ClipClapEmbedder,
    ClipClapInputError,
    Modality,
    Video,
)
from clipclap_integrations.media.audio import decode_audio, resample, to_mono  # noqa: E402
from clipclap_integrations.media.video import iter_frames, probe_video, shown_between  # noqa: E402
from clipclap_integrations.testing.video import make_audio, make_video, sound  # noqa: E402


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "mp4": make_video(d / "clip.mp4", VIDEO_SEGMENTS),
        "mp4_silent": make_video(d / "mute.mp4", VIDEO_SEGMENTS, audio=False),
        "webm": make_video(d / "clip.webm", VIDEO_SEGMENTS, codec="vp9"),
        "webm_silent": make_video(d / "mute.webm", VIDEO_SEGMENTS, codec="vp9", audio=False),
        "m4a": make_audio(d / "tone.m4a", sound(440.0, 3.0, 44_100), 44_100),
        "opus": make_audio(d / "tone.webm", sound("sweep", 3.0, 48_000), 48_000, codec="opus"),
        "quiet_track": make_video(d / "quiet.mp4", [(3, (0, 255, 0), None)]),
    }
    # an AAC track in an MP4 named like a video: a sound
    (d / "sound_only.mp4").write_bytes(out["m4a"].read_bytes())
    out["sound_only_mp4"] = d / "sound_only.mp4"
    data = out["mp4"].read_bytes()
    (d / "truncated.webm").write_bytes(out["webm"].read_bytes()[: len(data) // 2])
    out["truncated_webm"] = d / "truncated.webm"
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    out["truncated_mp4"] = d / "truncated.mp4"
    empty = av.open(str(d / "empty.webm"), "w")
    stream = empty.add_stream("libvpx-vp9", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    empty.start_encoding()
    empty.close()
    out["zero_frames"] = d / "empty.webm"
    return out


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir)


def _track(path: Path) -> tuple[np.ndarray, int]:
    """The first audio stream decoded with PyAV directly: (channels, n) float32, rate."""
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(c.streams.audio[0])]
    blocks = []
    for f in frames:
        arr = f.to_ndarray()
        if not f.format.is_planar:
            arr = arr.reshape(-1, f.layout.nb_channels).T
        blocks.append(arr.astype(np.float32))
    return np.concatenate(blocks, axis=1), frames[0].sample_rate


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# -- detection ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mp4", Modality.VIDEO),
        ("mp4_silent", Modality.VIDEO),
        ("webm", Modality.VIDEO),
        ("webm_silent", Modality.VIDEO),
        ("m4a", Modality.AUDIO),
        ("opus", Modality.AUDIO),
        ("sound_only_mp4", Modality.AUDIO),
    ],
)
def test_a_container_is_a_video_when_it_holds_a_video_stream(
    embedder: ClipClapEmbedder, videos: dict[str, Path], name: str, expected: Modality
) -> None:
    path = videos[name]
    assert embedder.detect(path) is expected
    assert embedder.detect(str(path)) is expected
    assert embedder.detect(path.read_bytes()) is expected  # bytes: by content alone
    with open(path, "rb") as f:
        assert embedder.detect(f) is expected


def test_wrappers_parts_and_data_uris_say_video(
    embedder: ClipClapEmbedder, videos: dict[str, Path]
) -> None:
    path = videos["mp4"]
    uri = "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()
    items = [
        Video(path),
        {"type": "video_url", "video_url": {"url": str(path)}},
        {"video_url": {"url": uri}},
        uri,
    ]
    for item in items:
        assert embedder.classify([item])[0].modality is Modality.VIDEO, item
    whole = embedder.embed([path])
    np.testing.assert_array_equal(embedder.embed(items[:2]), np.vstack([whole, whole]))
    # Audio(...) of a video is its soundtrack
    track, rate = _track(path)
    np.testing.assert_allclose(
        embedder.embed([Audio(path)]), embedder.embed_audio([(track, rate)]), atol=1e-6
    )
    with pytest.raises(ClipClapInputError, match="not a video"):
        embedder.embed([Video(np.zeros((8, 8, 3), np.uint8))])


def test_without_pyav_a_video_says_which_extra_to_install(
    embedder: ClipClapEmbedder, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_av(name: str, *args, **kwargs):
        if name == "av" or name.startswith("av."):
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    # without PyAV nothing looks inside: an M4A brand is a sound, a video name a video, bytes
    # of a generic MP4 stay audio (as before the extra existed)
    assert embedder.detect(videos["mp4"]) is Modality.VIDEO
    assert embedder.detect(videos["sound_only_mp4"]) is Modality.AUDIO
    assert embedder.detect(videos["mp4"].read_bytes()) is Modality.AUDIO
    with pytest.raises(ClipClapInputError, match=r"clip\.mp4.*clipclap-integrations\[video\]"):
        embedder.embed(["a caption", videos["mp4"]])


# -- audio containers through PyAV ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["m4a", "opus", "mp4", "webm"])
def test_audio_containers_decode_like_the_samples_they_hold(
    embedder: ClipClapEmbedder, videos: dict[str, Path], name: str
) -> None:
    path = videos[name]
    track, rate = _track(path)
    expected = resample(to_mono(track), rate, 48_000)
    ours, ours_rate = decode_audio(path, target_rate=48_000)
    assert ours_rate == 48_000
    np.testing.assert_array_equal(ours[0], expected)  # same samples, same resampling
    from_bytes, _ = decode_audio(path.read_bytes(), target_rate=48_000)
    np.testing.assert_array_equal(from_bytes, ours)
    np.testing.assert_array_equal(
        embedder.embed_audio([path]), embedder.embed_audio([(track, rate)])
    )


# -- moments -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mp4", "webm"])
def test_frames_and_windows_equal_the_image_and_audio_paths(
    embedder: ClipClapEmbedder, videos: dict[str, Path], name: str
) -> None:
    path = videos[name]
    moments = embedder.embed_video(path, frame_every_s=1.0, window_s=5.0)
    frames = moments.track("frames")
    assert frames.sum() == 12
    np.testing.assert_allclose(moments.starts[frames], np.arange(12.0))
    np.testing.assert_allclose(moments.ends[frames], np.arange(1.0, 13.0))
    reference = embedder.embed_images([frame_at(path, t) for t in moments.starts[frames]])
    np.testing.assert_array_equal(moments.vectors[frames], reference)

    track, rate = _track(path)
    segments = embedder.embed_audio_segments((track, rate), window_s=5.0)
    audio = moments.track("audio")
    np.testing.assert_array_equal(moments.vectors[audio], segments.vectors)
    np.testing.assert_allclose(moments.starts[audio], segments.starts)
    np.testing.assert_allclose(moments.ends[audio], segments.ends)

    whole = _unit(
        _unit(moments.vectors[frames].mean(axis=0)) + _unit(moments.vectors[audio].mean(axis=0))
    )
    np.testing.assert_allclose(moments.whole, whole, atol=1e-6)
    # embed() gives the whole vector of the default moments (10 s windows)
    np.testing.assert_array_equal(
        embedder.embed([Video(path)])[0], embedder.embed_video(path).whole
    )


def test_a_decoded_frame_finds_its_own_moment(
    embedder: ClipClapEmbedder, videos: dict[str, Path]
) -> None:
    path = videos["mp4"]
    moments = embedder.embed_video(path)
    for t, first_color in ((3.0, "red"), (9.0, "blue")):
        query = embedder.embed_images([frame_at(path, t)])[0]
        scores = moments.vectors @ query
        best = int(np.argmax(scores))
        assert moments.tracks[best] == "frames"
        assert moments.starts[best] <= t < moments.ends[best] or np.isclose(
            scores[best], scores[int(t)]
        )  # identical frames tie: any moment of the same color
        red = moments.track("frames") & (moments.starts < 6)
        blue = moments.track("frames") & (moments.starts >= 6)
        same, other = (red, blue) if first_color == "red" else (blue, red)
        assert scores[same].min() > scores[other].max()


def test_a_video_without_sound_is_its_frames(
    embedder: ClipClapEmbedder, videos: dict[str, Path]
) -> None:
    for name in ("mp4_silent", "quiet_track"):
        moments = embedder.embed_video(videos[name])
        assert set(moments.tracks) == {"frames"}
        np.testing.assert_allclose(moments.whole, _unit(moments.vectors.mean(axis=0)), atol=1e-6)


@pytest.mark.parametrize("every_s", [1.0, 0.35, 2.5])
def test_frames_skipped_while_decoding_change_no_sampled_frame(
    tmp_path: Path, every_s: float
) -> None:
    # moving pictures with B-frames: a sampled frame skipped or decoded wrongly would differ
    path = make_video(
        tmp_path / "moving.mp4", [(4, (200, 40, 40), None)], fps=15, moving=True, audio=False
    )
    with av.open(str(path)) as c:
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]
    frames = list(iter_frames(path, every_s))
    assert len(frames) == int(np.ceil(4.0 / every_s - 1e-3))
    for frame in frames:
        expected = [rgb for t, rgb in decoded if t <= frame.time_s + 1e-3][-1]
        np.testing.assert_array_equal(frame.rgb, expected)
    assert frames[-1].end_s == pytest.approx(4.0)


def test_which_frames_are_shown_at_a_sample_time() -> None:
    shown = shown_between(1.0)  # samples at 0, 1, 2, ...: the last frame at most each
    assert shown(0.0, 0.1) and shown(0.9, 1.002) and shown(1.0, 1.1) and shown(0.95, 1.05)
    assert not shown(0.1, 0.2) and not shown(1.5, 1.9) and not shown(0.9, 1.0005)
    assert shown(0.3, 5.0)  # several samples fall before the next frame
    assert not shown_between(0.35)(0.36, 0.69) and shown_between(0.35)(0.36, 0.72)


def test_keyframes_only_decodes_the_keyframes(videos: dict[str, Path]) -> None:
    frames = list(iter_frames(videos["mp4"], keyframes_only=True))
    with av.open(str(videos["mp4"])) as c:
        keys = [f.time for f in c.decode(c.streams.video[0]) if f.key_frame]
    assert [f.time_s for f in frames] == pytest.approx(keys)
    assert frames[-1].end_s == pytest.approx(12.0)
    assert all(a.end_s == pytest.approx(b.time_s) for a, b in itertools.pairwise(frames))


def test_probe_reads_the_header(videos: dict[str, Path]) -> None:
    info = probe_video(videos["mp4"])
    assert (info.width, info.height, info.fps, info.has_video, info.has_audio) == (
        320,
        240,
        10.0,
        True,
        True,
    )
    assert info.duration_s == pytest.approx(12.0, abs=0.1)
    assert not probe_video(videos["mp4_silent"]).has_audio


# -- bad videos ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated_mp4", "not a readable video|truncated"),
        ("truncated_webm", "truncated"),
        ("zero_frames", "no frames|no video stream|not a readable video"),
    ],
)
def test_bad_videos_are_named(
    embedder: ClipClapEmbedder, videos: dict[str, Path], name: str, message: str
) -> None:
    path = videos[name]
    with pytest.raises(ClipClapInputError, match=message) as info:
        embedder.embed(["fine", Video(path)])
    assert info.value.index == 1 and path.name in str(info.value)
    with pytest.raises(ClipClapInputError, match=message):
        embedder.embed_video(path)


def test_limits_refuse_before_decoding(tiny_model_dir: Path, videos: dict[str, Path]) -> None:
    path = videos["mp4"]
    cases = [
        ({"max_image_pixels": 320 * 240 - 1}, "max_image_pixels"),  # a huge declared size
        ({"max_video_seconds": 5.0}, "max_video_seconds"),
        ({"max_video_frames": 11}, "max_video_frames"),
    ]
    for options, message in cases:
        embedder = ClipClapEmbedder(tiny_model_dir, **options)
        with pytest.raises(ClipClapInputError, match=message) as info:
            embedder.embed([path])
        assert path.name in str(info.value)
    fine = ClipClapEmbedder(tiny_model_dir, max_video_frames=12, frame_every_s=1.0)
    assert fine.embed([path]).shape == (1, fine.dim)
    with pytest.raises(ValueError, match="frame_every_s"):
        ClipClapEmbedder(tiny_model_dir, frame_every_s=0)


def test_containers_are_sniffed_by_content() -> None:
    from clipclap_integrations.inputs.sniff import sniff_bytes

    ts = bytearray(600)
    ts[0] = ts[188] = ts[376] = 0x47
    cases = {
        b"\0\0\0\x18ftypisom\0\0\0\0isomavc1": ("video", "video/mp4"),
        b"\0\0\0\x14ftypqt  \0\0\0\0qt  ": ("video", "video/quicktime"),
        b"\0\0\0\x20ftypM4A \0\0\0\0M4A mp42isom": ("audio", "audio/mp4"),
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm": ("video", "video/webm"),
        b"\x1a\x45\xdf\xa3\xa3\x42\x82\x88matroska": ("video", "video/x-matroska"),
        b"RIFF\0\0\0\0AVI LIST": ("video", "video/x-msvideo"),
        bytes(ts): ("video", "video/mp2t"),
        b"\0\0\1\xba\x44\0\4\0\4\1": ("video", "video/mpeg"),
    }
    for head, (modality, mime) in cases.items():
        assert sniff_bytes(head + bytes(64)) == (Modality(modality), mime), head
    assert sniff_bytes(b"\x47" + bytes(600)) is None  # one sync byte is no transport stream


def test_videos_share_model_batches_as_parts(
    tiny_model_dir: Path, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = ClipClapEmbedder(tiny_model_dir, batch_size=32)
    single = [embedder.embed_video(videos[n]).whole for n in ("mp4", "webm_silent")]
    runs: list[tuple[str, int]] = []
    project = embedder.encoders.project

    def counting(modality, feeds):
        runs.append((modality.value, len(next(iter(feeds.values())))))
        return project(modality, feeds)

    monkeypatch.setattr(embedder.encoders, "project", counting)
    together = embedder.embed([videos["mp4"], videos["webm_silent"]])
    # 12 + 12 frames in one image run; the 2 soundtrack windows in one audio run
    assert sorted(runs) == [("audio", 2), ("image", 24)]
    np.testing.assert_allclose(together, np.vstack(single), atol=1e-6)
    # the parts a folder indexer would batch: moments, then the derived means, the whole last
    item = embedder.classify([videos["mp4"]], "video")[0]
    placed = list(embedder.pipelines[Modality.VIDEO].parts(item))  # type: ignore[attr-defined]
    tracks = [p.track for p in placed]
    assert tracks == ["frames"] * 12 + ["audio"] * 2 + ["frames_mean", "audio_mean", "whole"]
    assert placed[-1].part.mean_of == (14, 15) and placed[14].part.mean_of == tuple(range(12))
