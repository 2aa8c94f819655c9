"""Decoding image files into float arrays: any Pillow mode, resized, bad files reported.

Every reader returns float32 pixels in [0, 1]: (h, w, 3) in "rgb" mode,
(h, w) in "grey" mode. A file that cannot be decoded (missing, truncated,
not an image) raises ImageReadError; the batch readers skip it instead and
report ``(path, problem)``, so one bad file never stops a run over thousands.
EXIF orientation and ICC profiles are not applied, as in the usual ImageNet
pipelines.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage.color import rgb2gray

from terafeat.media.adaptations import ImageAdaptations

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif",
                              ".ppm", ".pgm", ".pbm", ".webp"})
MODES = ("rgb", "grey")
ALPHA = ("white", "drop")
ON_ERROR = ("skip", "raise")
_DEEP_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})  # read as 16-bit
_RESAMPLE = Image.Resampling.BILINEAR  # widens with the reduction factor: antialiased
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                  Image.DecompressionBombError)


class ImageReadError(ValueError):
    """An image file that cannot be decoded: ``path`` names it, ``problem`` says why."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        return type(self), (self.path, self.problem)


def check_choice(name: str, value, choices) -> None:
    """ValueError naming parameter ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_size(size) -> tuple[int, int] | None:
    """size as (height, width): None, an int (square) or a pair of positive ints."""
    if size is None:
        return None
    height, width = (size, size) if np.isscalar(size) else size
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"size must be positive (height, width), got {size}")
    return int(height), int(width)


def _standard_mode(image: Image.Image, alpha: str) -> tuple[Image.Image, float]:
    """``image`` in mode "L", "RGB" or "F", and the value of white in it.

    Palette, CMYK, YCbCr, ... become RGB; transparency is composited on white
    or dropped; 16-bit grey ("I;16*", and "I" as Pillow opens 16-bit PNG / PGM)
    becomes "F" with white 65535; "F" is taken to hold values in [0, 1].
    """
    if image.mode in _DEEP_MODES:
        return Image.fromarray(np.asarray(image, dtype=np.float32)), 65535.0
    if image.mode == "F":
        return image, 1.0
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if alpha == "drop":
            return rgba.convert("RGB"), 255.0
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), 255.0
    if image.mode == "1":
        return image.convert("L"), 255.0
    return (image if image.mode in ("L", "RGB") else image.convert("RGB")), 255.0


def _decode(image: Image.Image, size: tuple[int, int] | None, crop: bool,
            alpha: str) -> np.ndarray:
    """Pixels of an open image, (h, w) or (h, w, 3) float32 in [0, 1], resized to ``size``."""
    if size is not None:
        # JPEG only: decode at a reduced DCT scale, twice the target size or more, which
        # halves the decoding time with differences < 0.06 from a full decode
        image.draft(None, (2 * size[1], 2 * size[0]))
    image.load()
    image, white = _standard_mode(image, alpha)
    if size is not None:
        width_height = size[::-1]
        image = (ImageOps.fit(image, width_height, _RESAMPLE) if crop
                 else image.resize(width_height, _RESAMPLE))
    pixels = np.asarray(image, dtype=np.float32) / np.float32(white)
    return np.clip(pixels, 0, 1, out=pixels) if image.mode == "F" else pixels


def read_image(path, size=None, mode: str = "rgb", *, crop: bool = False,
               alpha: str = "white", adaptations: ImageAdaptations | None = None) -> np.ndarray:
    """One image file as float32 in [0, 1]: (h, w, 3) for mode "rgb", (h, w) for "grey".

    size: None (as stored), an int (square) or (height, width) to resize to,
    with Pillow's bilinear filter, antialiased when shrinking (JPEGs are
    first decoded at the smallest DCT scale still twice ``size``).
    crop: first cut the largest centred region with the aspect of ``size``,
    so nothing is stretched. alpha: "white" composites transparent pixels on
    white, "drop" ignores the alpha channel. Grey is the luminance of
    :func:`skimage.color.rgb2gray`. Raises ImageReadError naming the file
    for a missing, truncated or corrupt file, or one that is not an image.
    adaptations: where to note the image's stored size and mode and what reading did.
    """
    check_choice("mode", mode, MODES)
    check_choice("alpha", alpha, ALPHA)
    size = _check_size(size)
    try:
        with Image.open(path) as image:
            stored = image.size, image.mode
            pixels = _decode(image, size, crop, alpha)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image file Pillow can read") from None
    except _DECODE_ERRORS as error:
        problem = (f"cannot read the file ({error.strerror})"  # a folder, no permission, ...
                   if isinstance(error, OSError) and error.errno
                   else f"truncated or corrupt ({type(error).__name__}: {error})")
        raise ImageReadError(path, problem) from error
    if adaptations is not None:
        adaptations.note(*stored, size, crop, rgb=mode == "rgb")
    if mode == "grey":
        return rgb2gray(pixels).astype(np.float32) if pixels.ndim == 3 else pixels
    return np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels


def read_images(paths: Sequence, size=None, mode: str = "rgb", on_error: str = "skip", *,
                crop: bool = False, alpha: str = "white",
                adaptations: ImageAdaptations | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode many image files into one float32 stack (see :func:`read_image`).

    Returns (images, kept, problems): images (n_kept, h, w, 3) or (n_kept, h, w);
    kept (n_kept,) int64 positions in ``paths`` of the decoded files; problems
    [(path, problem)] for the files skipped. With ``size=None`` every image
    must have the size of the first good one; one that differs is a problem.
    on_error="raise" raises the first ImageReadError instead of skipping.
    adaptations: notes every image kept (see :func:`read_image`).
    """
    check_choice("on_error", on_error, ON_ERROR)
    size = _check_size(size)
    images, kept, problems = None, [], []
    for position, path in enumerate(paths):
        noted = ImageAdaptations() if adaptations is not None else None
        try:
            image = read_image(path, size, mode, crop=crop, alpha=alpha, adaptations=noted)
            if images is not None and image.shape != images.shape[1:]:
                raise ImageReadError(path, f"is {image.shape[0]}x{image.shape[1]}, not "
                                           f"{images.shape[1]}x{images.shape[2]} like the "
                                           "first image: give a size to resize to")
        except ImageReadError as error:
            if on_error == "raise":
                raise
            problems.append((error.path, error.problem))
            continue
        if noted is not None:
            adaptations += noted
        if images is None:
            images = np.empty((len(paths),) + image.shape, np.float32)
        images[len(kept)] = image
        kept.append(position)
    if images is None:
        height, width = size or (0, 0)
        images = np.empty((0, height, width) + ((3,) if mode == "rgb" else ()), np.float32)
    elif len(kept) < len(images):
        images = images[:len(kept)].copy()
    return images, np.asarray(kept, dtype=np.int64), problems


def iter_image_batches(paths: Sequence, batch_size: int, size=None, mode: str = "rgb", *,
                       crop: bool = False, alpha: str = "white",
                       adaptations: ImageAdaptations | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]]:
    """Read ``paths`` ``batch_size`` files at a time; memory holds one batch.

    Yields (kept, images, problems) per batch as :func:`read_images` returns
    them, except that kept holds positions in the whole ``paths`` sequence
    and comes first. Bad files are always skipped and reported; ``adaptations`` notes
    the images kept.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    paths = list(paths)  # positional slices of a list, a Series or an array alike
    for start in range(0, len(paths), batch_size):
        images, kept, problems = read_images(paths[start:start + batch_size], size, mode,
                                             crop=crop, alpha=alpha, adaptations=adaptations)
        yield kept + start, images, problems
