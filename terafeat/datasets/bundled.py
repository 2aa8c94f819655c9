"""Images that ship inside scikit-image and scikit-learn: no download needed."""
from __future__ import annotations

import numpy as np

#: Natural images bundled with scikit-image (by loader name) and scikit-learn.
NATURAL_IMAGES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field",
                  "grass", "gravel", "brick", "china", "flower")
SKLEARN_IMAGES = ("china", "flower")


def load_bundled_image(name: str) -> np.ndarray:
    """One bundled image by name: (h, w) or (h, w, 3) uint8."""
    if name in SKLEARN_IMAGES:
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    import skimage.data
    loader = getattr(skimage.data, name, None)
    if loader is None or name.startswith("_"):
        raise ValueError(f"unknown bundled image {name!r}; known: {', '.join(NATURAL_IMAGES)}")
    return np.asarray(loader())


def grey_images(names=NATURAL_IMAGES) -> list[np.ndarray]:
    """Bundled images as grey float32 (h, w) arrays in [0, 1]."""
    from skimage.color import rgb2gray
    images = []
    for name in names:
        image = load_bundled_image(name)
        if image.ndim == 3:
            image = rgb2gray(image[..., :3])
        elif image.dtype == np.uint8:
            image = image / 255.0
        images.append(image.astype(np.float32))
    return images


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's ``lfw_subset``: images (200, 25, 25) float32 in [0, 1], labels (200,).

    The first 100 are faces (label 1), the last 100 non-face crops (label 0).
    """
    import skimage.data
    images = skimage.data.lfw_subset().astype(np.float32)
    labels = np.r_[np.ones(100, dtype=np.int64), np.zeros(len(images) - 100, dtype=np.int64)]
    return images, labels
