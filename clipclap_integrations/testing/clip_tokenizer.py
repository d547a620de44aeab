"""CLIP's tokenizer (openai/clip-vit-base-patch32), rebuilt offline and shipped as package data.

The Hub's ``tokenizer.json`` cannot be downloaded on the project's machines; the same file is
rebuilt, id for id, from the BPE merge list inside the ``open-clip-torch`` wheel by
:func:`build_clip_tokenizer`, and shipped as ``data/clip_tokenizer.json.gz``.
"""

from __future__ import annotations

import gzip
import importlib.resources
import os
import pathlib
import zipfile
from typing import TYPE_CHECKING

from ..runtime.model import EOS_ID

if TYPE_CHECKING:
    import tokenizers

VOCAB_SIZE = 49_408
BOS_ID = 49_406
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
_NUM_MERGES = 49_152 - 256 - 2  # 48,894
_CLIP_SPLIT_PATTERN = (
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
)
_TOKENIZER_DATA = "data/clip_tokenizer.json.gz"
_BPE_IN_WHEEL = "open_clip/bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (256 entries)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _read_bpe_merges(source: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The 48,894 CLIP merges from ``bpe_simple_vocab_16e6.txt.gz`` or a wheel holding it."""
    path = pathlib.Path(source)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if n.endswith("bpe_simple_vocab_16e6.txt.gz")]
            if not names:
                raise FileNotFoundError(f"{path} holds no bpe_simple_vocab_16e6.txt.gz")
            member = _BPE_IN_WHEEL if _BPE_IN_WHEEL in names else names[0]
            raw = wheel.read(member)
    else:
        raw = path.read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    lines = text.split("\n")[1 : _NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    if len(merges) != _NUM_MERGES or any(len(m) != 2 for m in merges):
        raise ValueError(f"{path}: not CLIP's BPE merge list")
    return merges  # type: ignore[return-value]


def build_clip_tokenizer(source: str | os.PathLike[str]) -> tokenizers.Tokenizer:
    """Rebuild the Hub's CLIP ``tokenizer.json`` (openai/clip-vit-base-patch32) offline.

    ``source`` is the ``open-clip-torch`` wheel or its ``bpe_simple_vocab_16e6.txt.gz``.
    Mirrors ``transformers``' ``CLIPConverter``: 49,408 ids = 256 byte characters, the same
    with ``</w>``, the 48,894 merges joined, then ``<|startoftext|>`` and ``<|endoftext|>``.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import BPE

    merges = _read_bpe_merges(source)
    chars = list(_bytes_to_unicode().values())
    words = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    words += [BOS_TOKEN, EOS_TOKEN]
    vocab = {word: index for index, word in enumerate(words)}
    if len(vocab) != VOCAB_SIZE or vocab[BOS_TOKEN] != BOS_ID or vocab[EOS_TOKEN] != EOS_ID:
        raise ValueError("unexpected CLIP vocabulary layout")
    tokenizer = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="</w>",
            fuse_unk=False,
            unk_token=EOS_TOKEN,
        )
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.RobertaProcessing(
        (EOS_TOKEN, EOS_ID),  # sep
        (BOS_TOKEN, BOS_ID),  # cls
        trim_offsets=False,
        add_prefix_space=False,
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=True) for token in (BOS_TOKEN, EOS_TOKEN)]
    )
    return tokenizer


def write_clip_tokenizer(
    source: str | os.PathLike[str], out_file: str | os.PathLike[str]
) -> pathlib.Path:
    """Write the rebuilt CLIP tokenizer JSON; gzip-compressed (reproducibly) if ``*.gz``."""
    data = build_clip_tokenizer(source).to_str(pretty=False).encode("utf-8")
    out = pathlib.Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gz":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    out.write_bytes(data)
    return out


def clip_tokenizer_json() -> bytes:
    """The CLIP ``tokenizer.json`` bytes shipped as package data (uncompressed)."""
    resource = importlib.resources.files(__package__ or "clipclap_integrations.testing")
    return gzip.decompress(resource.joinpath(_TOKENIZER_DATA).read_bytes())
