"""What a camera does to a clip: translation, zoom, playback speed, brightness and contrast.

A ``CameraChange`` holds one of each; :func:`camera_change` draws one of a named kind at a
strength in [0, 1] of the ranges below, its directions (which way the frame moves, zoom
in or out, faster or slower, brighter or darker) seeded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from terafeat.validation import check_random_state

#: Ranges at strength 1: translation up to this fraction of the frame's side, zoom
#: between 1 / MAX_ZOOM and MAX_ZOOM, playback speed between 1 / MAX_SPEED and MAX_SPEED,
#: contrast between 1 / MAX_CONTRAST and MAX_CONTRAST about mid-grey, brightness offset
#: up to +-MAX_BRIGHTNESS (frames in [0, 1]).
MAX_SHIFT, MAX_ZOOM, MAX_SPEED, MAX_CONTRAST, MAX_BRIGHTNESS = 0.25, 4 / 3, 1.5, 1.5, 0.2
#: Kinds of change: one property each, or all of them at once.
KINDS = ("translation", "scale", "speed", "photometric", "combined")


@dataclass(frozen=True)
class CameraChange:
    """shift: (down, right) as fractions of the frame's height and width; zoom: scale
    factor about the frame's centre; speed: playback rate (1.5: the action 1.5x as fast);
    contrast: factor about mid-grey; brightness: offset added, in [0, 1] units."""

    shift: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    speed: float = 1.0
    contrast: float = 1.0
    brightness: float = 0.0

    def __post_init__(self):
        for name in ("zoom", "speed", "contrast"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def apply(self, clip: np.ndarray) -> np.ndarray:
        """The clip (T, H, W) grey in [0, 1] as this camera films it: (T', H, W) float32,
        T' = round(T / speed) (at least 2; frames linearly interpolated in time); borders
        revealed by translation or zoom repeat the frame's edge pixels; values clipped to [0, 1]."""
        import cv2
        clip = np.asarray(clip, dtype=np.float32)
        if clip.ndim != 3 or len(clip) < 2:
            raise ValueError(f"expected a (T >= 2, H, W) grey clip, got shape {clip.shape}")
        n, h, w = clip.shape
        frames = clip.copy()
        if self.speed != 1.0:
            times = np.arange(max(2, round(n / self.speed))) * self.speed
            before = np.minimum(np.floor(times).astype(int), n - 1)
            after = np.minimum(before + 1, n - 1)
            weight = np.minimum(times - before, 1.0).astype(np.float32)[:, None, None]
            frames = clip[before] * (1 - weight) + clip[after] * weight
        if self.shift != (0.0, 0.0) or self.zoom != 1.0:
            matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, float(self.zoom))
            matrix[:, 2] += (self.shift[1] * w, self.shift[0] * h)
            frames = np.stack([cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                              borderMode=cv2.BORDER_REPLICATE)
                               for frame in frames])
        if self.contrast != 1.0 or self.brightness != 0.0:
            frames = (frames - 0.5) * np.float32(self.contrast) + np.float32(0.5 + self.brightness)
        return np.clip(frames, 0.0, 1.0, out=frames)


def camera_change(kind: str, strength: float, random_state=None) -> CameraChange:
    """A seeded change of ``kind`` (one of ``KINDS``) at ``strength`` in [0, 1].

    translation: a shift of ``strength * MAX_SHIFT`` of the frame in a uniform
    direction; scale: zoom ``MAX_ZOOM ** (+-strength)``; speed:
    ``MAX_SPEED ** (+-strength)``; photometric: contrast ``MAX_CONTRAST **
    (+-strength)`` and brightness ``+-strength * MAX_BRIGHTNESS``; combined:
    all four, each drawn as above. Signs are drawn with even odds.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown camera change {kind!r}; known: {KINDS}")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    rng = check_random_state(random_state)
    angle = rng.uniform(0, 2 * np.pi)
    zoom, speed, contrast, brightness = rng.choice((-1.0, 1.0), size=4) * strength
    every = kind == "combined"
    return CameraChange(
        shift=((float(strength * MAX_SHIFT * np.sin(angle)), float(strength * MAX_SHIFT
                                                                    * np.cos(angle)))
               if every or kind == "translation" else (0.0, 0.0)),
        zoom=float(MAX_ZOOM ** zoom) if every or kind == "scale" else 1.0,
        speed=float(MAX_SPEED ** speed) if every or kind == "speed" else 1.0,
        contrast=float(MAX_CONTRAST ** contrast) if every or kind == "photometric" else 1.0,
        brightness=float(MAX_BRIGHTNESS * brightness) if every or kind == "photometric" else 0.0)
