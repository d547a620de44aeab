"""Recognizing media by content (magic numbers), MIME type or file extension."""

from __future__ import annotations

from .types import Modality

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".gif",
        ".webp",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".ico",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".avif",
    }
)
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".mp3",
        ".m4a",
        ".aac",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
    }
)
_IMAGE_FTYP_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1")


def sniff_bytes(head: bytes) -> tuple[Modality, str] | None:
    """(modality, MIME type) recognized from the first bytes of a file, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Modality.IMAGE, "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return Modality.IMAGE, "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Modality.IMAGE, "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return Modality.IMAGE, "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Modality.AUDIO, "audio/wav"
    if head.startswith(b"BM") and len(head) >= 26 and head[6:10] == b"\0\0\0\0":
        return Modality.IMAGE, "image/bmp"
    if head.startswith((b"II*\0", b"MM\0*")):
        return Modality.IMAGE, "image/tiff"
    if head.startswith(b"\0\0\1\0") and len(head) >= 6 and head[4:6] != b"\0\0":
        return Modality.IMAGE, "image/x-icon"
    if head.startswith(b"fLaC"):
        return Modality.AUDIO, "audio/flac"
    if head.startswith(b"OggS"):
        return Modality.AUDIO, "audio/ogg"
    if head.startswith(b"ID3"):
        return Modality.AUDIO, "audio/mpeg"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return Modality.AUDIO, "audio/aiff"
    if head.startswith(b".snd"):
        return Modality.AUDIO, "audio/basic"
    if head.startswith(b"caff"):
        return Modality.AUDIO, "audio/x-caf"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        if head[8:12] in _IMAGE_FTYP_BRANDS:
            return Modality.IMAGE, "image/avif" if head[8:12].startswith(b"avi") else "image/heic"
        return Modality.AUDIO, "audio/mp4"
    if len(head) >= 3 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and _mpeg_frame(head):
        return Modality.AUDIO, "audio/mpeg" if head[1] & 0x06 else "audio/aac"
    return None


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio or ADTS frame header: sync bits and no reserved field values."""
    layer = (head[1] >> 1) & 0x03
    if layer == 0:  # ADTS (AAC): sampling index must be valid
        return ((head[2] >> 2) & 0x0F) < 13
    version = (head[1] >> 3) & 0x03
    bitrate = (head[2] >> 4) & 0x0F
    rate = (head[2] >> 2) & 0x03
    return version != 1 and bitrate not in (0, 15) and rate != 3


def modality_of_mime(mime: str | None) -> Modality | None:
    """Modality named by a MIME type (``image/*``, ``audio/*``, ``text/plain``), or None."""
    if not mime:
        return None
    mime = mime.split(";", 1)[0].strip().lower()
    if mime.startswith("image/"):
        return Modality.IMAGE
    if mime.startswith("audio/") or mime in ("application/ogg", "video/ogg"):
        return Modality.AUDIO
    if mime == "text/plain":
        return Modality.TEXT
    return None


def modality_of_extension(name: str) -> Modality | None:
    """Modality suggested by a file name's extension, or None."""
    dot = name.rfind(".")
    if dot < 0 or "/" in name[dot:]:
        return None
    ext = name[dot:].lower()
    if ext in IMAGE_EXTENSIONS:
        return Modality.IMAGE
    if ext in AUDIO_EXTENSIONS:
        return Modality.AUDIO
    return None
