"""Whether encoded media holds what its header promises, checked before decoders that would
not say so. Each check reads through ``read(offset, n)`` (up to ``n`` bytes from ``offset``):
only the bytes it needs, in memory or in a file of ``total_size`` bytes."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any


def reader(fp: Any) -> tuple[Callable[[int, int], bytes], int]:
    """``read(offset, n)`` over a seekable binary file, and the file's size."""

    def read(at: int, n: int) -> bytes:
        fp.seek(at)
        return fp.read(n)

    return read, fp.seek(0, io.SEEK_END)


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer), index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(h: bytes) -> tuple[int, tuple[int, int, int]] | None:
    """(length in bytes, (version, layer, rate)) of the MPEG audio frame header ``h``."""
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return None
    version, layer_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    index, rate_index, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or index in (0, 15) or rate_index == 3 or h[3] & 3 == 2:
        return None  # reserved version, layer, bitrate, rate or emphasis (or free format)
    layer = 4 - layer_bits
    bitrate = _MPEG_BITRATES[(version == 3, layer)][index - 1] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    elif layer == 3 and version != 3:
        length = 72 * bitrate // rate + padding
    else:
        length = 144 * bitrate // rate + padding
    return length, (version, layer, rate)


def _id3v2_end(data: bytes) -> int:
    if len(data) < 10 or not data.startswith(b"ID3"):
        return 0
    size = 0
    for b in data[6:10]:
        size = (size << 7) | (b & 0x7F)
    return 10 + size + (10 if data[5] & 0x10 else 0)


def mpeg_stream_problem(read: Callable[[int, int], bytes], total_size: int) -> str | None:
    """Why a stream that looks like MP3 is not a sound MPEG audio stream, or None if it is.

    Walks the whole chain of frame headers (cheap: four bytes a frame) from the first frame,
    which must start within 64 KiB after any ID3v2 tag, to the end of the stream or a trailing
    tag; a Xing/Info or VBRI header must not declare more bytes than there are. libmpg123
    would otherwise hunt through junk and resync over corrupt frames, printing notes on
    stderr, or stop quietly partway; here each is a clear reason instead. A last frame cut
    short is tolerated after three whole ones (the stream just ends early).
    """
    start = _id3v2_end(read(0, 10))
    if start >= total_size:
        return "an ID3 tag with no audio after it"
    window = read(start, 65536 + 4)  # the first frame must start within 64 KiB of junk
    i = window.find(b"\xff")
    while 0 <= i <= len(window) - 4:
        first = _mpeg_frame_length(window[i : i + 4])
        if first is not None:
            position = start + i
            frames, ending, at = _walk_frames(read, position, first, total_size)
            # A real stream: whole frames to the end (two at least: a lone "frame" that
            # happens to end where the data does is junk), or three and then a cut-short one.
            if (ending == "end" and frames >= 2) or (ending == "cut" and frames >= 3):
                frame = read(position, min(first[0], 256))
                return _vbr_header_problem(frame, total_size - position)
            # Two headers in a row are where libmpg123 locks on: a break after that is
            # corruption it would resync over (printing notes), not junk before the stream.
            if ending == "broken" and frames >= 2:
                return f"a corrupt MP3 (its frames break off at byte {at:,})"
        i = window.find(b"\xff", i + 1)
    return "no MPEG audio frames where they should start (junk or a corrupt MP3)"


def _walk_frames(
    read: Callable[[int, int], bytes],
    offset: int,
    first: tuple[int, tuple[int, int, int]],
    total_size: int,
) -> tuple[int, str, int]:
    """Follow frame headers from ``offset``: (whole frames, how the chain ends, where).

    It ends at the ``"end"`` of the stream (exactly, or at a trailing ID3v1, APE or Lyrics3
    tag), is ``"cut"`` short (a last frame, or a few bytes, past the data), or is
    ``"broken"`` by bytes that are no frame of the same kind.
    """
    kind = first[1]
    frames = 0
    length = first[0]
    while True:
        if offset + length > total_size:
            return frames, "cut", offset
        frames, offset = frames + 1, offset + length
        if offset == total_size:
            return frames, "end", offset
        header = read(offset, 10)
        frame = _mpeg_frame_length(header)
        if frame is not None and frame[1] == kind:
            length = frame[0]
            continue
        if header.startswith((b"TAG", b"APETAGEX", b"LYRICSBEGIN")):
            return frames, "end", offset
        if header.startswith(b"ID3"):  # an ID3v2 tag between concatenated streams
            offset += max(_id3v2_end(header), 10)
            if offset >= total_size:
                return frames, "end", offset
            frame = _mpeg_frame_length(read(offset, 4))
            if frame is not None and frame[1] == kind:
                length = frame[0]
                continue
        if total_size - offset < 4:
            return frames, "cut", offset
        rest = total_size - offset
        if rest <= 65536 and not read(offset, rest).strip(b"\0"):
            return frames, "end", offset  # zero padding after the last frame
        return frames, "broken", offset


def _vbr_header_problem(frame: bytes, stream_bytes: int) -> str | None:
    declared = None
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 4, 64)
        if at >= 0 and len(frame) >= at + 16:
            flags = int.from_bytes(frame[at + 4 : at + 8], "big")
            field = at + 8 + (4 if flags & 1 else 0)
            if flags & 2:
                declared = int.from_bytes(frame[field : field + 4], "big")
            break
    at = frame.find(b"VBRI", 4, 64)
    if declared is None and at >= 0 and len(frame) >= at + 14:
        declared = int.from_bytes(frame[at + 10 : at + 14], "big")
    if declared and stream_bytes < declared * 0.99:
        return f"a truncated MP3 ({stream_bytes:,} of the {declared:,} bytes it declares)"
    return None


def jpeg_data_problem(read: Callable[[int, int], bytes], total_size: int) -> str | None:
    """Why a JPEG cannot hold the image its header declares, or None if it may.

    libjpeg fills a scan that stops early (at an EOI marker, say) with gray, and Pillow
    reports no error, so a file of a few hundred bytes can decode to an image of tens of
    megapixels. Huffman coding spends at least 2 bits on every 8x8 block of a baseline scan
    (a DC code and an end-of-block code) and at least 1 bit on every block of a progressive
    DC scan, so the bytes after the first SOS marker bound the blocks there can be. Arithmetic
    coded and lossless JPEGs are not judged.
    """
    position = 2
    frame: tuple[int, int, int, list[tuple[int, int]]] | None = None
    for _ in range(1000):  # markers before the first scan
        head = read(position, 4)
        if len(head) < 4 or head[0] != 0xFF:
            return None  # not a marker where one should be: leave it to the decoder
        marker = head[1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        if marker == 0xD9:
            return None
        length = int.from_bytes(head[2:4], "big")
        if marker in (0xC0, 0xC1, 0xC2):  # Huffman: baseline, extended, progressive
            body = read(position + 4, length - 2)
            if len(body) >= 6:
                height, width, count = (
                    int.from_bytes(body[1:3], "big"),
                    int.from_bytes(body[3:5], "big"),
                    body[5],
                )
                sampling = [(b >> 4, b & 0x0F) for b in body[7 : 6 + 3 * count : 3]]
                frame = (marker, width, height, sampling)
        elif 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return None  # lossless or arithmetic coded
        if marker == 0xDA:
            if frame is None:
                return None
            kind, width, height, sampling = frame
            if not width or not height or not sampling or any(0 in s for s in sampling):
                return None
            h_max = max(h for h, _ in sampling)
            v_max = max(v for _, v in sampling)
            blocks = [  # 8x8 blocks of each component, without MCU padding
                _ceil_div(_ceil_div(width * h, h_max), 8)
                * _ceil_div(_ceil_div(height * v, v_max), 8)
                for h, v in sampling
            ]
            needed_bits = 2 * sum(blocks) if kind != 0xC2 else min(blocks)
            available = total_size - position
            if available * 8 < needed_bits:
                return (
                    f"a JPEG with too little data for its {width}x{height} header "
                    f"({available:,} bytes of scan data, at least {needed_bits // 8:,} needed): "
                    "truncated or corrupt"
                )
            return None
        position += 2 + length
    return None


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
