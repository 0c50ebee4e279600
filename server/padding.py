"""Pad image files to one byte size with chunks every decoder skips, so a file's size tells
nothing about what it shows (strongly activating images compress to larger files: the size
alone answered 72 % of trials). Torch-free."""
from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from experiments.errors import InterpsyError

MARGIN = 64  # bytes above the largest file: room for the container headers padding adds


def pad_target(sizes: list[int]) -> int:
    """The one size every file of a set is padded to: the largest plus MARGIN, even."""
    target = max(sizes) + MARGIN
    return target + target % 2


def pad(data: bytes, size: int, fmt: str) -> bytes:
    """`data` (a WebP, JPEG or PNG file) grown to exactly `size` bytes, pixels untouched."""
    grown = {"webp": _pad_webp, "jpeg": _pad_jpeg, "png": _pad_png}[fmt](data, size)
    if len(grown) != size:
        raise InterpsyError(f"padding a {fmt} file of {len(data)} bytes to {size} gave "
                            f"{len(grown)}")
    return grown


def _pad_webp(data: bytes, size: int) -> bytes:
    """An unknown chunk ('PADD') after the image, in the extended format (VP8X) whose readers
    skip unknown chunks; a simple file gets its VP8X header first."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InterpsyError("not a WebP file")
    chunks = data[12:]
    if chunks[:4] in (b"VP8 ", b"VP8L"):
        with Image.open(io.BytesIO(data)) as image:
            (width, height), alpha = image.size, "A" in image.getbands()
        flags = 0x10 if chunks[:4] == b"VP8L" and alpha else 0  # VP8X's alpha bit
        chunks = (b"VP8X" + struct.pack("<I", 10) + bytes([flags, 0, 0, 0])
                  + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
                  + chunks)
    body = b"WEBP" + chunks
    fill = size - 8 - len(body) - 8
    if fill < 0 or fill % 2:
        raise InterpsyError(f"a WebP file of {len(data)} bytes cannot be padded to {size}")
    body += b"PADD" + struct.pack("<I", fill) + bytes(fill)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pad_jpeg(data: bytes, size: int) -> bytes:
    """Comment segments (COM) right after the start-of-image marker."""
    if data[:2] != b"\xff\xd8":
        raise InterpsyError("not a JPEG file")
    fill = size - len(data)
    segments = []
    while fill > 0:
        payload = min(fill - 4, 65_533)
        if payload < 0 or (fill - 4 - payload) in (1, 2, 3):
            payload -= 4  # leave a remainder a whole segment can take
        if payload < 0:
            raise InterpsyError(f"a JPEG file of {len(data)} bytes cannot be padded to {size}")
        segments.append(b"\xff\xfe" + struct.pack(">H", payload + 2) + bytes(payload))
        fill -= payload + 4
    return data[:2] + b"".join(segments) + data[2:]


def _pad_png(data: bytes, size: int) -> bytes:
    """A private ancillary chunk ('paDd': skipped by any decoder) before IEND."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[-12:-8] != b"\x00\x00\x00\x00":
        raise InterpsyError("not a PNG file")
    fill = size - len(data) - 12
    if fill < 0:
        raise InterpsyError(f"a PNG file of {len(data)} bytes cannot be padded to {size}")
    body = b"paDd" + bytes(fill)
    chunk = struct.pack(">I", fill) + body + struct.pack(">I", zlib.crc32(body))
    return data[:-12] + chunk + data[-12:]

