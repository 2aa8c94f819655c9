"""The input that drives one unit hardest under a norm constraint (numerical optimisation)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from terafeat.validation import check_random_state


def optimal_stimulus(response: Callable[[np.ndarray], float],
                     gradient: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...],
                     n_starts: int = 4, max_iter: int = 300, random_state=0) -> np.ndarray:
    """The input of unit L2 norm that maximises a unit's response.

    response(x) -> float and gradient(x) -> (d,) take a flat input x (d,),
    d = prod(shape).  The constraint ``||x||_2 = 1`` is built in: L-BFGS runs
    over an unconstrained v with x = v / ||v||, whose gradient is the
    tangential part of ``gradient(x)`` divided by ||v||.  The best of
    ``n_starts`` seeded random starts is returned, reshaped to ``shape``.
    """
    d = int(np.prod(shape))
    rng = check_random_state(random_state)

    def negative(v: np.ndarray):
        norm = np.linalg.norm(v)
        x = v / norm
        grad = np.asarray(gradient(x), dtype=np.float64).ravel()
        tangential = grad - (grad @ x) * x
        return -float(response(x)), -tangential / norm

    best_x, best_value = None, -np.inf
    for _ in range(max(1, int(n_starts))):
        v0 = rng.standard_normal(d)
        result = minimize(negative, v0 / np.linalg.norm(v0), jac=True, method="L-BFGS-B",
                          options={"maxiter": int(max_iter), "gtol": 1e-9, "ftol": 1e-14})
        x = result.x / np.linalg.norm(result.x)
        value = float(response(x))
        if value > best_value:
            best_x, best_value = x, value
    return best_x.reshape(shape)




def template_correlation(stimulus: np.ndarray, images: np.ndarray) -> float:
    """Pearson correlation of a stimulus (h, w) with the mean of ``images`` (n, h, w) (for
    the face neuron: the mean held-out face): 1 when the stimulus is that mean up to
    brightness and contrast, about 0 for an unrelated one."""
    stimulus = np.asarray(stimulus, dtype=np.float64)
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[1:] != stimulus.shape:
        raise ValueError(f"images of shape {images.shape} are not (n, *{stimulus.shape})")
    return float(np.corrcoef(stimulus.ravel(), images.mean(axis=0).ravel())[0, 1])
