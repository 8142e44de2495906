"""Bounded image decoding: the header is read before any pixel is, and every failure names the file.

A 900 KB PNG can declare 30000 x 30000 pixels; decoding it takes 0.9-2.7 GB before anything could
check its size (OpenCV allocates the whole image, PIL warns only after ~90 megapixels). So the size
comes first, from the header PIL reads lazily, and an image over ``max_pixels`` is a bad file like a
truncated one: named, skipped under ``skip_bad``, listed by ``verify``, never decoded.

Whatever a decoder raises (PIL, OpenCV, a MemoryError, anything) leaves this module as one
:class:`BadImage` naming the path and the reason, so caching, ``verify``, the loaders and
``predict`` all report bad files the same way.
"""
from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DataError

# PIL's own decompression-bomb threshold (1 GiB of 32-bit pixels / 3: about 89.5 megapixels, 268 MB
# of decoded RGB), large enough for any camera photo; ``ImageFolderDataModule(max_pixels=...)``
MAX_PIXELS = 89_478_485

_pil_limit = threading.Lock()


class BadImage(DataError):
    """A file that is not a decodable image within the limits; ``str()`` is ``PATH: reason``."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")

    def sample_message(self) -> str:
        """What a loader reports for a sample it cannot use: ``PATH: cannot decode image (reason)``,
        the reason's own "cannot decode:" not repeated."""
        return f"{self.path}: cannot decode image ({self.reason.removeprefix('cannot decode: ')})"


class Header(NamedTuple):
    width: int
    height: int
    mode: str
    format: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _open(path: Path | io.BytesIO, unlimited: bool = False) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is ours, checked next
        if not unlimited:
            return Image.open(path)
        with _pil_limit:  # max_pixels above PIL's hard stop (2x its threshold): lift it for this open
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def read_header(path: str | Path, max_pixels: int = MAX_PIXELS) -> Header:
    """Width, height, mode and format from the file's header, without decoding pixels.

    Raises :class:`BadImage` for an empty, unreadable or unidentifiable file, or one whose header
    declares more than ``max_pixels`` pixels.
    """
    path = Path(path)
    return _read_header(path, path, max_pixels)


def _read_header(source: Path | io.BytesIO, name: str | Path, max_pixels: int) -> Header:
    """``source``: the file, or its bytes already read (a sample of a chunk); ``name`` is what errors say."""
    try:
        if (source.stat().st_size if isinstance(source, Path) else source.getbuffer().nbytes) == 0:
            raise BadImage(name, "empty file (0 bytes)")
        try:
            image = _open(source)
        except Image.DecompressionBombError:  # PIL's hard stop: read the size anyway, to word it (and
            image = _open(source, unlimited=True)  # to accept it when max_pixels is above PIL's stop)
        with image:
            header = Header(int(image.width), int(image.height), str(image.mode), str(image.format or ""))
    except BadImage:
        raise
    except PermissionError:
        raise BadImage(name, "unreadable (permission denied)") from None
    except UnidentifiedImageError:
        raise BadImage(name, "not an image (cannot identify the format)") from None
    except Exception as err:  # any reader failure is this file's fault, not the run's
        raise BadImage(name, f"cannot read the header ({_first_line(err)})") from None
    if header.width <= 0 or header.height <= 0:
        raise BadImage(name, f"image has no pixels ({header.width}x{header.height})")
    if header.pixels > max_pixels:
        raise BadImage(name, f"image too large: {header.width}x{header.height} = {header.pixels:,} pixels, "
                             f"the limit is {max_pixels:,} (max_pixels)")
    return header


def decode(path: str | Path, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as uint8 (H, W, channels): grey, RGB, RGBA, palette, CMYK and 16-bit converted.

    The header is checked first (:func:`read_header`). OpenCV then decodes (~1.7x faster than PIL
    on JPEG); it would accept a truncated JPEG silently, so JPEGs must end with their end-of-image
    marker. What OpenCV cannot read goes to PIL. Raises :class:`BadImage` and nothing else.
    """
    path = Path(path)
    header = read_header(path, max_pixels)
    return _decode(path, path, header, channels, max_pixels)


def decode_bytes(data: bytes | memoryview, name: str, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """:func:`decode` for a file's bytes already in memory (a sample of a LitData chunk): the same
    checks and decoders, so the pixels are those :func:`decode` gives for the file; errors say ``name``."""
    data = bytes(data)  # LitData hands out memoryviews, on which `in` looks for an int, not a marker
    header = _read_header(io.BytesIO(data), name, max_pixels)
    return _decode(data, name, header, channels, max_pixels)


# PNG and PGM/PPM open 16-bit grey as PIL's "I" (32-bit) mode; elsewhere (TIFF) "I" is 32-bit data
SIXTEEN_BIT_AS_I = {"PNG", "PPM"}


def _decode(source: Path | bytes, name: str | Path, header: Header, channels: int, max_pixels: int) -> np.ndarray:
    # 32-bit pixels have no one scaling to 8 bits (OpenCV and PIL turn float TIFFs black): refused
    if header.mode == "F":
        raise BadImage(name, "32-bit float pixels are not supported: convert to 8 or 16 bit")
    if header.mode == "I" and header.format not in SIXTEEN_BIT_AS_I:
        raise BadImage(name, "32-bit integer pixels are not supported: convert to 8 or 16 bit")
    try:
        data = source.read_bytes() if isinstance(source, Path) else source
        array = _decode_cv2(data, name, channels)
        if array is None:
            array = _decode_pil(source if isinstance(source, Path) else io.BytesIO(data), channels, max_pixels)
    except BadImage:
        raise
    except PermissionError:
        raise BadImage(name, "unreadable (permission denied)") from None
    except Exception as err:  # PIL's OSError/ValueError, cv2.error, MemoryError, ...: a bad file
        raise BadImage(name, f"cannot decode: {_first_line(err)}") from None
    if array.shape[0] * array.shape[1] > max(max_pixels, header.pixels):
        # a file whose header and data disagree (a polyglot): refuse what was not announced
        raise BadImage(name, f"decoded {array.shape[1]}x{array.shape[0]} pixels, its header says "
                             f"{header.width}x{header.height}")
    return array


def _decode_cv2(data: bytes, name: str | Path, channels: int) -> np.ndarray | None:
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        raise BadImage(name, "cannot decode: truncated JPEG (no end-of-image marker)")
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR  # 16-bit -> 8, alpha dropped
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if array is None:
        return None
    return array[:, :, None] if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def _decode_pil(source: Path | io.BytesIO, channels: int, max_pixels: int) -> np.ndarray:
    with _open(source, unlimited=Image.MAX_IMAGE_PIXELS is not None and max_pixels > 2 * Image.MAX_IMAGE_PIXELS) \
            as image:
        image.load()  # decodes fully: a truncated file fails here, not later
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit: keep the top 8 bits
            array = np.asarray(image, dtype=np.uint32) >> 8
            image = Image.fromarray(array.clip(0, 255).astype(np.uint8))
        image = image.convert("L" if channels == 1 else "RGB")
        array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if array.ndim == 2 else array
