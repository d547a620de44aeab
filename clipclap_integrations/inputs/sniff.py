"""Recognizing media by content (magic numbers), MIME type or file extension."""

from __future__ import annotations

from ..types import Modality

HEAD_BYTES = 512  # enough for every signature ``sniff_bytes`` knows (MPEG-TS: 3 packets)

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
        ".rf64",
        ".weba",
    }
)
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".mk3d",
        ".webm",
        ".avi",
        ".ts",
        ".mts",
        ".m2ts",
        ".mpg",
        ".mpeg",
        ".3gp",
    }
)
_AUDIO_FTYP_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
_IMAGE_FTYP_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1")
_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # "riff" + GUID
_EBML = b"\x1a\x45\xdf\xa3"  # Matroska / WebM (browsers record audio as audio/webm)


def sniff_bytes(head: bytes) -> tuple[Modality, str] | None:
    """(modality, MIME type) recognized from the first bytes of a file, or None.

    Images: PNG, JPEG, GIF, WEBP, BMP, TIFF (and BigTIFF), ICO, AVIF/HEIC. Audio: WAV (RIFF,
    RF64, Wave64), FLAC, Ogg, MP3 (ID3 tag or MPEG frame), AAC (ADTS), M4A (by its brand),
    AIFF, AU, CAF. Containers that can hold video (MP4/MOV/M4V, Matroska/WebM, AVI, MPEG-TS,
    MPEG-PS) are said to be video here: whether they hold a video stream, or only sound, is
    ``inputs.containers.settle``'s to tell.
    """
    head = bytes(head[:HEAD_BYTES])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Modality.IMAGE, "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return Modality.IMAGE, "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return Modality.IMAGE, "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return Modality.IMAGE, "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Modality.VIDEO, "video/x-msvideo"
    if head.startswith((b"RIFF", b"RF64", b"BW64")) and head[8:12] == b"WAVE":
        return Modality.AUDIO, "audio/wav"
    if head.startswith(_W64_GUID):
        return Modality.AUDIO, "audio/x-w64"
    if head.startswith(b"BM") and len(head) >= 26 and head[6:10] == b"\0\0\0\0":
        return Modality.IMAGE, "image/bmp"
    if head.startswith((b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")):
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
    if head.startswith(_EBML):
        return Modality.VIDEO, "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        if head[8:12] in _IMAGE_FTYP_BRANDS:
            return Modality.IMAGE, "image/avif" if head[8:12].startswith(b"avi") else "image/heic"
        if head[8:12] in _AUDIO_FTYP_BRANDS:
            return Modality.AUDIO, "audio/mp4"
        return Modality.VIDEO, "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide"):  # QuickTime, no ftyp
        return Modality.VIDEO, "video/quicktime"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:  # 188-byte TS packets
        return Modality.VIDEO, "video/mp2t"
    if head.startswith(b"\0\0\1\xba"):  # MPEG program stream pack header
        return Modality.VIDEO, "video/mpeg"
    if len(head) >= 3 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and _mpeg_frame(head):
        if _utf16le_text(head):  # FF FE is also the UTF-16 byte order mark
            return None
        return Modality.AUDIO, "audio/mpeg" if head[1] & 0x06 else "audio/aac"
    return None


def _utf16le_text(head: bytes) -> bool:
    """A UTF-16 (little-endian) byte order mark followed by characters below U+0100."""
    body = head[2:34]
    return head[:2] == b"\xff\xfe" and len(body) >= 2 and body[1::2] == bytes(len(body) // 2)


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
    """Modality named by a MIME type (``image/*``, ``audio/*``, ``video/*``, ``text/*``), or
    None (``video/ogg`` is audio: Ogg video is not decoded)."""
    if not mime:
        return None
    mime = mime.split(";", 1)[0].strip().lower()
    if mime.startswith("image/"):
        return Modality.IMAGE
    if mime.startswith("audio/") or mime in ("application/ogg", "video/ogg"):
        return Modality.AUDIO
    if mime.startswith("video/"):
        return Modality.VIDEO
    if mime.startswith("text/"):
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
    if ext in VIDEO_EXTENSIONS:
        return Modality.VIDEO
    return None
