"""What reading did to images to give them one shape, counted: the sizes and Pillow
modes found, centre crops, resizes, grey copied to three channels.

The readers of :mod:`terafeat.media.images` note every image they decode into an
:class:`ImageAdaptations` when given one; counts from batches, shards and processes add
up with ``+``, travel as ``to_dict()`` (JSON, picklable) and are shown as ``summary()``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Pillow modes of one channel (grey, 1-bit, 16-bit, float; with or without alpha).
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
#: Sizes named in a summary, the most common first.
SHOWN_SIZES = 5


def _size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


@dataclass
class ImageAdaptations:
    """Counts over the images noted: ``sizes`` {(width, height) as stored: images},
    ``modes`` {Pillow mode as stored: images}, ``centre_cropped`` (a centred region of
    the target's aspect cut out), ``resized`` (scaled to the target size),
    ``grey_to_colour`` (one channel copied to RGB), ``colour_to_grey`` (read as grey)."""

    sizes: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    centre_cropped: int = 0
    resized: int = 0
    grey_to_colour: int = 0
    colour_to_grey: int = 0

    def note(self, stored_size: tuple[int, int], stored_mode: str, target=None,
             crop: bool = False, rgb: bool = True) -> None:
        """One image of ``stored_size`` (width, height) and ``stored_mode``, read as
        ``target`` (height, width; None: as stored), centre-cropped first if ``crop``
        and the aspects differ, as RGB (``rgb``) or grey."""
        width, height = stored_size
        self.sizes[(int(width), int(height))] += 1
        self.modes[stored_mode] += 1
        grey = stored_mode in GREY_MODES
        self.grey_to_colour += rgb and grey
        self.colour_to_grey += not rgb and not grey
        if target is None:
            return
        target_height, target_width = target
        region = (width, height)
        if crop and width * target_height != height * target_width:
            self.centre_cropped += 1
            region = ((target_width * height / target_height, height)
                      if width * target_height > height * target_width
                      else (width, target_height * width / target_width))
        self.resized += region != (target_width, target_height)

    def __add__(self, other: ImageAdaptations) -> ImageAdaptations:
        total = ImageAdaptations()
        total += self
        total += other
        return total

    def __iadd__(self, other: ImageAdaptations) -> ImageAdaptations:
        """Adds ``other``'s counts into this object (the one callers passed in)."""
        self.sizes.update(other.sizes)
        self.modes.update(other.modes)
        self.centre_cropped += other.centre_cropped
        self.resized += other.resized
        self.grey_to_colour += other.grey_to_colour
        self.colour_to_grey += other.colour_to_grey
        return self

    def to_dict(self) -> dict:
        """Plain JSON types: sizes as {"WxH": images}; :meth:`from_dict` reads it back."""
        return {"sizes": {_size_name(size): n for size, n in self.sizes.items()},
                "modes": dict(self.modes), "centre_cropped": self.centre_cropped,
                "resized": self.resized, "grey_to_colour": self.grey_to_colour,
                "colour_to_grey": self.colour_to_grey}

    @classmethod
    def from_dict(cls, data: dict) -> ImageAdaptations:
        sizes = Counter({tuple(int(side) for side in name.split("x")): n
                         for name, n in data["sizes"].items()})
        return cls(sizes, Counter(data["modes"]), data["centre_cropped"], data["resized"],
                   data["grey_to_colour"], data["colour_to_grey"])

    def summary(self) -> dict:
        """{"images", "distinct_sizes", "common_sizes" [["WxH", images]] (the most common
        SHOWN_SIZES), "smallest", "largest" ("WxH" by area), "modes", "centre_cropped",
        "resized", "grey_to_colour", "colour_to_grey"}."""
        by_area = sorted(self.sizes, key=lambda size: (size[0] * size[1], size))
        return {"images": sum(self.sizes.values()), "distinct_sizes": len(self.sizes),
                "common_sizes": [[_size_name(size), n]
                                 for size, n in self.sizes.most_common(SHOWN_SIZES)],
                "smallest": _size_name(by_area[0]) if by_area else None,
                "largest": _size_name(by_area[-1]) if by_area else None,
                "modes": dict(self.modes.most_common()),
                "centre_cropped": self.centre_cropped, "resized": self.resized,
                "grey_to_colour": self.grey_to_colour, "colour_to_grey": self.colour_to_grey}


def describe_adaptations(summary: dict) -> str:
    """One line of a :meth:`ImageAdaptations.summary`: images, sizes, what was done."""
    if not summary["images"]:
        return "no images"
    sizes = ", ".join(f"{name}: {n}" for name, n in summary["common_sizes"])
    done = [f"{summary[key]} {what}" for key, what in (
        ("centre_cropped", "centre-cropped"), ("resized", "resized"),
        ("grey_to_colour", "grey copied to three channels"),
        ("colour_to_grey", "colour read as grey")) if summary[key]]
    return (f"{summary['images']} images of {summary['distinct_sizes']} size(s) ({sizes}"
            f"{', ...' if summary['distinct_sizes'] > len(summary['common_sizes']) else ''}; "
            f"smallest {summary['smallest']}, largest {summary['largest']}); "
            + (", ".join(done) if done else "none cropped, resized or converted"))
