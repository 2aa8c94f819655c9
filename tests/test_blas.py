"""FasterThreadCount: the faster of one thread and all threads, by measured time."""
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from terafeat.blas import FasterThreadCount
from terafeat.learning.rica_objective import RicaLoss


def _choices(chooser: FasterThreadCount, calls: int, seconds_per_thread_count: dict) -> list[int]:
    chosen = []
    for _ in range(calls):
        with chooser.timed() as count:
            time.sleep(seconds_per_thread_count[count])
        chosen.append(count)
    return chosen


@pytest.mark.parametrize("faster", [1, 4])
def test_settles_on_the_faster_and_probes_the_other_every_probe_every_calls(faster):
    chooser = FasterThreadCount(4, probe_every=8)
    slower = 5 - faster
    chosen = _choices(chooser, 34, {faster: 0.002, slower: 0.02})
    assert chosen[:2] == [4, 1]
    assert [i for i, count in enumerate(chosen) if count == slower][1:] == [8, 16, 24, 32]


def test_follows_a_change_of_load():
    chooser = FasterThreadCount(2, probe_every=4)
    _choices(chooser, 8, {2: 0.002, 1: 0.02})
    after = _choices(chooser, 12, {2: 0.03, 1: 0.002})  # the threads became the slow choice
    assert after[-3:] == [1, 1, 1]


def test_one_thread_at_most_never_probes():
    chooser = FasterThreadCount(1)
    assert _choices(chooser, 5, {1: 0.0}) == [1] * 5


def test_one_blas_thread_limits_a_blas_loaded_after_the_first_call():
    """scipy and OpenCV bring their own BLAS; one loaded later must be limited too."""
    import subprocess
    import sys
    script = (
        "import numpy\n"
        "from terafeat.blas import one_blas_thread\n"
        "with one_blas_thread(): pass\n"
        "import cv2, scipy.linalg\n"
        "from threadpoolctl import threadpool_info, threadpool_limits\n"
        "with threadpool_limits(2, 'blas'), one_blas_thread():\n"
        "    print(sorted({i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}))\n")
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True).stdout
    assert printed.strip() == "[1]"


def test_measured_threads_give_the_same_bits_as_one_thread():
    """Whatever the calls choose, every RICA evaluation equals the one-thread one."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 16)).astype(np.float32)
    W = rng.standard_normal((32, 16)).astype(np.float32)
    with threadpool_limits(2, "blas"):
        measured = RicaLoss(X, 32, 0.5, 1e-2, block_rows=256)
    single_value, single_grad = RicaLoss(X, 32, 0.5, 1e-2, block_rows=256, n_threads=1)(W)
    for _ in range(20):
        value, grad = measured(W)
        assert value == single_value
        assert np.array_equal(grad, single_grad)
    timed = measured._kernel._thread_count.seconds
    assert sorted(timed) == [1, 2] and None not in timed.values()  # both were run
