"""Small media made in memory for the input-detection tests (images, sounds, hostile files)."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from functools import cache

import numpy as np

SR = 48_000
# The video tests' clip: 6 s of red frames with a 440 Hz tone, then 6 s of blue with a sweep.
VIDEO_SEGMENTS = [(6, (255, 0, 0), 440.0), (6, (0, 0, 255), "sweep")]


@cache
def rgb_array(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256])
    noise = rng.integers(0, 40, size=(3, height, width))
    return np.clip(base + noise, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


def image_bytes(fmt: str = "PNG", array: np.ndarray | None = None, **save: object) -> bytes:
    from PIL import Image

    arr = rgb_array() if array is None else array
    out = io.BytesIO()
    Image.fromarray(arr).save(out, fmt, **save)
    return out.getvalue()


@cache
def tone(seconds: float = 0.5, rate: int = SR, channels: int = 1, freq: float = 440.0):
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (0.5 + 0.5 * c / channels) for c in range(channels)], axis=1).astype(
        np.float32
    )  # (frames, channels)


def audio_bytes(fmt: str = "WAV", subtype: str | None = None, samples=None, rate: int = SR):
    import soundfile as sf

    data = tone() if samples is None else samples
    out = io.BytesIO()
    sf.write(out, data, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- hostile files


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_solid(width: int, height: int) -> bytes:
    """A real, complete, highly compressible gray PNG of any size (streamed, small memory)."""
    compressor = zlib.compressobj(1)
    row = b"\0" + b"\x80" * width
    parts = [compressor.compress(row) for _ in range(height)] + [compressor.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small valid JPEG with its frame header patched to claim width x height."""
    data = bytearray(image_bytes("JPEG", rgb_array(16, 16)))
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def wav_claiming(data_bytes: int, body_frames: int = 4800, rate: int = SR, channels: int = 1):
    """A 16-bit PCM WAV whose RIFF and data sizes claim ``data_bytes``, with a short body."""
    byte_rate = min(rate * 2 * channels, 0xFFFFFFFF)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, byte_rate, 2 * channels, 16)
    body = (np.round(tone(body_frames / SR, SR) * 32767).astype("<i2")).tobytes()
    body = body * channels if channels > 1 else body
    riff = min(data_bytes + 36, 0xFFFFFFFF)
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", min(data_bytes, 0xFFFFFFFF))
        + body
    )


def flac_claiming(total_frames: int, seconds: float = 0.2) -> bytes:
    """A short valid FLAC whose STREAMINFO claims ``total_frames`` samples."""
    data = bytearray(audio_bytes("FLAC", samples=tone(seconds)))
    at = 8 + 10  # "fLaC", block header (4), min/max block size (4), min/max frame size (6)
    value = int.from_bytes(data[at : at + 8], "big")
    value = (value & ~((1 << 36) - 1)) | total_frames
    data[at : at + 8] = value.to_bytes(8, "big")
    return bytes(data)


def id3v2_tag(payload: int = 100) -> bytes:
    size = payload
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x04\x00\x00" + syncsafe + b"\0" * payload


def frame_at(path: object, t: float) -> np.ndarray:
    """The RGB frame on screen at ``t`` (the last frame whose time is at most t), decoded
    with PyAV directly: the independent reference for the video tests."""
    import av

    shown = None
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            if shown is not None and f.time > t + 1e-3:
                break
            shown = f
    assert shown is not None
    return shown.to_ndarray(format="rgb24")
