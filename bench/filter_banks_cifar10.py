"""Which filter bank makes good single-layer features: RICA (by reconstruction weight
and iterations) against k-means, random whitened patches and random untrained filters,
all through the same whitening, encoder and classifier, on a CIFAR-10 subset.

Run from the repository root::

    python bench/filter_banks_cifar10.py                  # 1000 / 300 images per class, ~40 min
    python bench/filter_banks_cifar10.py --per-class 200 --features 400   # a quick look

Pipeline (the imagenet flow's): 100,000 contrast-normalised 6x6x3 patches of the
training images, PCA-whitened onto the components keeping 99% of their variance
(eps 0.01); each filter bank (k filters, unit rows) encodes every image by stride-1
convolution, split soft threshold 0.25 and sums over quadrants (8k features);
standardised; ridge one-vs-rest with its regulariser chosen by leave-one-out on
the training images (scikit-learn's ``RidgeClassifierCV``); test accuracy.  Printed
per bank: fit seconds, distinct filters (``rica.distinct_filters``: no earlier
filter with |cosine| > 0.95) and test accuracy, and the peer: k-means.

What it shows: k filters on about 40 whitened dimensions are 40x overcomplete, and
RICA's reconstruction term is met by any tight frame, copies included; a weak term or
a long fit lets the sparsity term gather the filters onto fewer directions, and
accuracy follows the count of distinct filters.  With a strong term (lam 30), filters
started from Gaussian noise barely move in a short fit and stay noise-like; started
from whitened patches drawn from the data (``rica.sampled_filters``, the flow's
default), the filters stay spread over the data, as edges and colour contrasts (see
the report's filter figure).  The untrained patches RICA starts from are printed as
their own bank, so the part of the gain that is the start shows beside the part that is
training.

It writes no results file yet: run it to measure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import extracted  # noqa: E402

#: (label, lam, iterations, start) of the RICA fits compared; start "samples" draws
#: the starting filters from the whitened patches (``rica.sampled_filters``).
RICA_FITS = [("RICA lam 0.1, 200 it, Gaussian start", 0.1, 200, "random"),
             ("RICA lam 30, 20 it, Gaussian start", 30.0, 20, "random"),
             ("RICA lam 30, 60 it, sampled start (default)", 30.0, 60, "samples"),
             ("RICA lam 30, 200 it, sampled start", 30.0, 200, "samples")]


def subset(root: Path, per_class: int, per_class_test: int, seed: int):
    """(train images, train labels, test images, test labels), images (n, 32, 32, 3)."""
    from terafeat.datasets.image_sets import list_image_set, prepare_listing, read_listed_images
    frame = prepare_listing(list_image_set("folders", root), per_class, per_class_test,
                            random_state=seed)
    out = []
    for split in ("train", "test"):
        rows = frame[frame["split"] == split]
        images, kept, _ = read_listed_images(rows, 32)
        out += [images, rows["label"].to_numpy()[kept]]
    return out


def test_accuracy(filters, whitener, data) -> tuple[float, float]:
    """(test accuracy, chosen regulariser / n) of the bank's features under LOO ridge."""
    from sklearn.linear_model import RidgeClassifierCV

    from terafeat.encoding.convolutional import ConvolutionalEncoder
    train, y_train, test, y_test = data
    encoder = ConvolutionalEncoder(filters, whitener.whitening_, whitener.mean_, 6)
    F_train, F_test = encoder.transform(train), encoder.transform(test)
    mean, scale = F_train.mean(0), np.sqrt(F_train.var(0) + 0.01)
    grid = np.array([0.01, 0.03, 0.1, 0.3, 1.0])
    model = RidgeClassifierCV(alphas=grid * len(F_train)).fit((F_train - mean) / scale, y_train)
    return float(model.score((F_test - mean) / scale, y_test)), model.alpha_ / len(F_train)


def main(argv=None) -> int:
    from terafeat.encoding.convolutional import contrast_normalize
    from terafeat.learning.kmeans import kmeans_filters
    from terafeat.learning.rica import RICA, distinct_filters, normalize_rows, sampled_filters
    from terafeat.learning.whitening import Whitener
    from terafeat.media.patches import sample_patches
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, help="folder holding cifar10/ (default: the "
                        "shared archive extracted into a temporary folder)")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--per-class-test", type=int, default=300)
    parser.add_argument("--features", type=int, default=1600)
    parser.add_argument("--patches", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = extracted("cifar10", args.data_root or Path(scratch))
        data = subset(root, args.per_class, args.per_class_test, args.seed)
    patches = contrast_normalize(sample_patches(list(data[0]), args.patches, 6,
                                                random_state=args.seed))
    whitener = Whitener(method="pca", n_components=0.99, eps=0.01, remove_dc=False).fit(patches)
    whitened = whitener.transform(patches)
    k, rng = args.features, np.random.default_rng(args.seed)
    print(f"CIFAR-10 subset: {len(data[0])} training / {len(data[2])} test images; {k} filters "
          f"on {whitened.shape[1]} whitened dimensions", flush=True)
    banks = [("random Gaussian filters, untrained",
              lambda: normalize_rows(rng.standard_normal((k, whitened.shape[1])))[0]),
             ("random whitened patches (RICA's sampled start)",
              lambda: sampled_filters(whitened, k, args.seed)),
             ("k-means (peer)", lambda: kmeans_filters(whitened, k, args.seed))]
    banks += [(label, lambda lam=lam, iterations=iterations, start=start: RICA(
        n_features=k, lam=lam, max_iter=iterations, random_state=args.seed,
        init=sampled_filters(whitened, k, args.seed) if start == "samples" else start
    ).fit(whitened).W_) for label, lam, iterations, start in RICA_FITS]
    print(f"{'filter bank':<44}{'fit s':>8}{'distinct':>10}{'lam/n':>8}{'test acc':>10}")
    for label, fit in banks:
        started = time.perf_counter()
        filters = fit()
        seconds = time.perf_counter() - started
        accuracy, lam = test_accuracy(filters, whitener, data)
        print(f"{label:<44}{seconds:>8.1f}{distinct_filters(filters):>10}{lam:>8.2f}"
              f"{accuracy:>10.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
