"""The "Why RICA?" table of the talk (Le et al., NIPS 2011), measured in one run.

Run from the repository root::

    python bench/why_rica.py                       # full run (CIFAR-10 subset when present)
    python bench/why_rica.py --quick               # smoke run: fewer patches and iterations
    python bench/why_rica.py --json reports/why_rica.json   # also write the results

On the same ZCA-whitened 8x8 patches of the bundled natural images and the
same budget of 64 simple units (complete), it trains: sparse coding
(scikit-learn's MiniBatchDictionaryLearning, also at 256 atoms), a sparse
autoencoder (``terafeat.learning.autoencoder``, L-BFGS), TICA and ISA with the
orthonormality constraint (``terafeat.learning.tica``, projected gradient with
symmetric orthogonalisation), and RICA with ISA pooling in its sparsity term
at 1x, 2x and 4x (``terafeat.learning.rica``).  For each it prints: training wall
time, iterations, its own final objective (not comparable across families),
5-fold linear-classifier accuracy of its quadrant-pooled features on
lfw_subset faces vs non-faces, test accuracy on a class-balanced CIFAR-10
subset (grey, stride-2 encoding; from ``../shared/data/cifar10.tar`` or
``--cifar``, skipped when absent), and the invariance score of Goodfellow et
al. (2009) of its output units and of its simple units under translation
and in-plane rotation (mean of the top 20% of units; firing rate 1%).
Then the talk's check/cross table beside the measured one, with the rules
used for the measured marks.

Timings on a shared machine are noisy; run it with one BLAS thread
(OPENBLAS_NUM_THREADS=1) so that every method gets the same compute.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting.toolkit import markdown_table  # noqa: E402
from terafeat.analysis.why_rica import check_table, measured_table, why_rica  # noqa: E402
from terafeat.atomic_files import save_json  # noqa: E402

DEFAULT_CIFAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10.tar"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    parser.add_argument("--cifar", default=str(DEFAULT_CIFAR), help="cifar10.tar (skipped if absent)")
    parser.add_argument("--no-cifar", action="store_true", help="skip CIFAR-10")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cifar = None if args.no_cifar or not Path(args.cifar).is_file() else args.cifar
    sizes = (dict(n_patches=5000, max_iter=60, n_trajectories=1000, n_cifar_train=500,
                  n_cifar_test=500) if args.quick else
             dict(n_patches=20000, max_iter=300, n_trajectories=5000, n_cifar_train=2000,
                  n_cifar_test=1000))
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"settings: {sizes}, CIFAR-10: {cifar or 'not used'}")
    started = time.perf_counter()
    result = why_rica(cifar_tar=cifar, random_state=args.seed,
                      progress=lambda m: print(m, flush=True), **sizes)
    print(f"\nwhole comparison: {time.perf_counter() - started:.0f} s\n")
    print("Measured (accuracy: faces 5-fold CV; invariance: Goodfellow score, max 100):")
    print(markdown_table(measured_table(result)))
    print("\nThe talk's marks beside the measured ones. fast: training took at most 2x "
          "RICA's time at the same\nnumber of simple units (n/a: no RICA of that size); "
          "invariant: mean output-unit invariance\n(translation, rotation) at or above the "
          "median over all methods; easy: not measured.")
    print(markdown_table(check_table(result)))
    if args.json:
        print(f"\nresults: {save_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
