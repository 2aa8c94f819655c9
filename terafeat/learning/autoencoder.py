"""A sparse autoencoder (UFLDL's, with a linear decoder for whitened data),
trained with scipy's L-BFGS: the "RBMs / autoencoders" row of "Why RICA?".

For X (m, d), hidden units a = sigmoid(X W1^T + b1) (m, h), reconstruction
x_hat = a W2^T + b2 (m, d)::

    J = (1/2m) ||x_hat - X||^2 + (decay/2)(||W1||^2 + ||W2||^2)
        + beta * sum_j KL(rho || rho_hat_j),   rho_hat = mean over rows of a

Parameters are flattened into one vector theta = [W1, W2, b1, b2].
"""
from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from terafeat.validation import RANDOM_STATE, check_array, check_fitted_input, check_random_state

__all__ = ["unpack", "autoencoder_loss_grad", "SparseAutoencoder"]


def unpack(theta: np.ndarray, d: int, h: int):
    """theta (2hd + h + d,) -> W1 (h, d), W2 (d, h), b1 (h,), b2 (d,) (views)."""
    W1 = theta[:h * d].reshape(h, d)
    W2 = theta[h * d:2 * h * d].reshape(d, h)
    b1 = theta[2 * h * d:2 * h * d + h]
    b2 = theta[2 * h * d + h:]
    return W1, W2, b1, b2


def autoencoder_loss_grad(theta: np.ndarray, X: np.ndarray, n_hidden: int, decay: float,
                          beta: float, rho: float) -> tuple[float, np.ndarray]:
    """The objective of the module doc and its gradient (same shape as theta), float64."""
    m, d = X.shape
    W1, W2, b1, b2 = unpack(theta, d, n_hidden)
    hidden = expit(X @ W1.T + b1)
    residual = hidden @ W2.T + b2 - X
    rho_hat = np.clip(hidden.mean(axis=0), 1e-12, 1 - 1e-12)
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    value = (0.5 * np.sum(residual ** 2) / m + 0.5 * decay * (np.sum(W1 ** 2) + np.sum(W2 ** 2))
             + beta * kl)
    sparsity = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
    delta = (residual @ W2 / m + sparsity / m) * hidden * (1 - hidden)
    grad = np.concatenate([(delta.T @ X + decay * W1).ravel(),
                           (residual.T @ hidden / m + decay * W2).ravel(),
                           delta.sum(axis=0), residual.mean(axis=0)])
    return float(value), grad


class SparseAutoencoder(TransformerMixin, BaseEstimator):
    """Sparse autoencoder trained with L-BFGS (float64).

    Parameters (keyword-only): n_hidden, decay (weight decay), beta (sparsity
    weight), rho (target mean activation), max_iter (L-BFGS iterations; a fit
    they end warns, ConvergenceWarning), random_state (as in RICA).  Attributes:
    W1_ (h, d), b1_ (h,), W2_ (d, h), b2_ (d,), objective_ (per iteration),
    n_iter_, n_features_in_ (d).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_hidden": [Interval(Integral, 1, None, closed="left")],
        "decay": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "rho": [Interval(Real, 0, 1, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, *, n_hidden: int = 64, decay: float = 1e-4, beta: float = 3.0,
                 rho: float = 0.05, max_iter: int = 400, random_state=None):
        self.n_hidden = n_hidden
        self.decay = decay
        self.beta = beta
        self.rho = rho
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X, y=None) -> "SparseAutoencoder":
        """Learn the weights from X (m, d); y is ignored."""
        self._validate_params()
        X = check_array(X, dtype=np.float64, name="X")
        m, d = X.shape
        h = int(self.n_hidden)
        rng = check_random_state(self.random_state)
        bound = np.sqrt(6.0 / (h + d + 1))
        theta0 = np.concatenate([rng.uniform(-bound, bound, 2 * h * d), np.zeros(h + d)])
        history = []

        def on_iteration(intermediate_result):
            history.append(float(intermediate_result.fun))

        args = (X, h, self.decay, self.beta, self.rho)
        result = minimize(autoencoder_loss_grad, theta0, args=args, jac=True, method="L-BFGS-B",
                          callback=on_iteration,
                          options={"maxiter": int(self.max_iter), "ftol": 1e-12, "gtol": 1e-8})
        if result.nit >= int(self.max_iter):
            warnings.warn(f"SparseAutoencoder stopped at max_iter={self.max_iter} before L-BFGS "
                          "converged; raise max_iter to fit further", ConvergenceWarning,
                          stacklevel=2)
        self.W1_, self.W2_, self.b1_, self.b2_ = (a.copy() for a in unpack(result.x, d, h))
        self.objective_ = np.asarray([autoencoder_loss_grad(theta0, *args)[0]] + history)
        self.n_iter_ = int(result.nit)
        self.n_features_in_ = d
        return self

    def transform(self, X) -> np.ndarray:
        """Hidden activations (m, h) in (0, 1)."""
        check_is_fitted(self)
        X = check_fitted_input(self, X, np.float64)
        return expit(X @ self.W1_.T + self.b1_)
