"""Linear classifiers over streamed feature shards (terafeat.classification.streamed)."""
import numpy as np
import pytest
from scipy.linalg import cho_factor
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from terafeat.atomic_files import save_array
from terafeat.classification.linear_models import (
    RELATIVE_TOLERANCE,
    fit_lbfgs,
    gram_statistics,
    preconditioned,
    preconditioner,
    ridge_solve,
    streamed_loss,
)
from terafeat.classification.scoring import top_k_accuracy
from terafeat.classification.shard_streams import (
    feature_moments,
    iter_masked_shards,
    iter_shards,
    row_groups,
    Standardizer,
    validation_masks,
)
from terafeat.classification.streamed import (
    fit_streamed_classifier,
    LAM_GRID,
)


def blobs(n, f=20, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (classes, f))
    y = rng.integers(0, classes, n)
    X = (centres[y] + rng.normal(0, 1.5, (n, f))) * rng.uniform(0.1, 10, f) + 3
    return X.astype(np.float32), y


def write(tmp_path, X, y, rows=70):
    paths, labels = [], []
    for i, start in enumerate(range(0, len(X), rows)):
        paths.append(str(save_array(tmp_path / f"f-{i}.npy", X[start:start + rows])))
        labels.append(y[start:start + rows])
    return paths, labels


def test_moments_and_ridge_match_in_memory_solution(tmp_path):
    X, y = blobs(300)
    paths, labels = write(tmp_path, X, y)
    mean, std, n = feature_moments(paths)
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, X.std(0), rtol=1e-4)
    standardizer = Standardizer(mean, std)
    G, B, n = gram_statistics(iter_shards(paths, labels), standardizer, 3)
    A = standardizer.augment(X).astype(np.float64)
    Y = -np.ones((300, 3))
    Y[np.arange(300), y] = 1
    lam = 5.0
    penalty = lam * np.eye(A.shape[1])
    penalty[-1, -1] = 0  # the bias is not penalised
    expected = np.linalg.solve(A.T @ A + penalty, A.T @ Y)
    W = ridge_solve(G, B, lam)
    np.testing.assert_allclose(W, expected, rtol=1e-4, atol=1e-5)
    # folding the standardisation into the weights gives the same scores on raw features
    raw = standardizer.fold(W)
    np.testing.assert_allclose(X @ raw[:-1] + raw[-1], A @ W, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["squared_hinge", "softmax"])
def test_streamed_loss_gradient_matches_finite_differences(tmp_path, name):
    X, y = blobs(120, f=6)
    X = X.astype(np.float64)
    paths, labels = write(tmp_path, X.astype(np.float32), y, rows=50)
    mean, std, _ = feature_moments(paths)
    rng = np.random.default_rng(1)
    masks = [rng.random(len(y_s)) < 0.7 for y_s in labels]
    loss = streamed_loss(lambda: iter_masked_shards(paths, labels, masks),
                         Standardizer(mean, std), 3, 0.7, name)
    w = rng.normal(0, 0.3, (7 * 3,))
    value, grad = loss(w)
    # masked rows count for nothing: the same as the loss over the rows copied out
    subset = streamed_loss(lambda: ((X_s, y_s, None) for X_s, y_s in
                                    iter_shards(paths, labels, masks)),
                           Standardizer(mean, std), 3, 0.7, name)(w)
    np.testing.assert_allclose(value, subset[0], rtol=1e-6)
    np.testing.assert_allclose(grad, subset[1], rtol=1e-5, atol=1e-8)
    every_row = streamed_loss(lambda: iter_masked_shards(paths, labels),
                              Standardizer(mean, std), 3, 0.7, name)(w)
    assert every_row[0] > value
    numeric = np.zeros_like(w)
    for i in range(len(w)):
        step = np.zeros_like(w)
        step[i] = 1e-4
        numeric[i] = (loss(w + step)[0] - loss(w - step)[0]) / 2e-4
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-3 * np.abs(numeric).max())


def test_an_unknown_loss_is_named():
    with pytest.raises(ValueError, match="loss must be one of.*'hinge'"):
        streamed_loss(lambda: iter(()), Standardizer(np.zeros(2), np.ones(2)), 3, 1.0, "hinge")


def test_softmax_fit_reaches_sklearns_multinomial_logistic_regression(tmp_path):
    X, y = blobs(600, f=8, seed=3)
    paths, labels = write(tmp_path, X, y, rows=200)
    mean, std, _ = feature_moments(paths)
    standardizer = Standardizer(mean, std)
    G, B, n = gram_statistics(iter_shards(paths, labels), standardizer, 3)
    lam = 0.5
    weights, summary = fit_lbfgs(lambda: iter_masked_shards(paths, labels), standardizer, 3,
                                 lam, ridge_solve(G, B, lam), 500,
                                 R=preconditioner(G, lam), loss="softmax")
    reference = LogisticRegression(C=1 / (2 * lam), tol=1e-10, max_iter=5000).fit(
        standardizer.augment(X)[:, :-1], y)
    assert summary["converged"]
    objective = streamed_loss(lambda: iter_masked_shards(paths, labels), standardizer, 3, lam,
                              "softmax")
    sklearn_weights = np.vstack([reference.coef_.T, reference.intercept_])
    # at sklearn's optimum (within ten times L-BFGS's stopping tolerance), near its weights
    optimum = objective(sklearn_weights.ravel())[0]
    assert optimum <= summary["objective"] <= optimum * (1 + 10 * RELATIVE_TOLERANCE)
    np.testing.assert_allclose(weights[:-1], reference.coef_.T, rtol=5e-3,
                               atol=5e-3 * np.abs(reference.coef_).max())


def test_a_gram_matrix_indefinite_at_float32_resolution_still_factors(tmp_path):
    # more features than rows: G's zero eigenvalues come out of float32 sums slightly
    # negative, and a tiny lam does not lift them
    rng = np.random.default_rng(5)
    X = np.exp(rng.normal(0, 1, (40, 300))).astype(np.float32) @ rng.normal(0, 1, (300, 300)
                                                                             ).astype(np.float32)
    y = rng.integers(0, 2, 40)
    paths, labels = write(tmp_path, X, y, rows=20)
    standardizer = Standardizer(*feature_moments(paths)[:2])
    G, B, n = gram_statistics(iter_shards(paths, labels), standardizer, 2, np.float32)
    with pytest.raises(np.linalg.LinAlgError):
        cho_factor(G + 1e-9 * np.eye(len(G), dtype=np.float32))
    W = ridge_solve(G, B, 1e-9)
    assert np.isfinite(W).all()
    R = preconditioner(G, 1e-9)
    assert np.isfinite(R).all() and (np.diagonal(R) > 0).all()


def correlated_blobs(n, f=30, seed=0):
    """Overlapping classes (no linear separation: many rows keep slack, as with image
    features) seen through a mixing with singular values 1 .. 1e-3: ill-conditioned."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 0.4, (3, f))[y] + rng.normal(0, 1, (n, f))
    U, _ = np.linalg.qr(rng.normal(size=(f, f)))
    V, _ = np.linalg.qr(rng.normal(size=(f, f)))
    return (X @ U @ np.diag(np.logspace(0, -3, f)) @ V).astype(np.float32), y


def test_preconditioner_factors_the_regularised_gram_and_keeps_the_gradient(tmp_path):
    X, y = blobs(150, f=6)
    paths, labels = write(tmp_path, X, y, rows=60)
    mean, std, _ = feature_moments(paths)
    standardizer = Standardizer(mean, std)
    G, _, _ = gram_statistics(iter_shards(paths, labels), standardizer, 3)
    R = preconditioner(G, 2.0, block=4)  # blocks smaller than the matrix: 7 rows
    penalty = 2.0 * np.eye(7)
    penalty[-1, -1] = 0
    np.testing.assert_array_equal(R, np.triu(R))
    np.testing.assert_allclose(R.T @ R, G + penalty, rtol=1e-10, atol=1e-8)
    loss = streamed_loss(lambda: iter_masked_shards(paths, labels), standardizer, 3, 2.0)
    loss_v = preconditioned(loss, R, 3)
    rng = np.random.default_rng(2)
    W = rng.normal(0, 0.3, (7, 3))
    value, grad = loss_v((R @ W).ravel())
    assert value == pytest.approx(loss(W.ravel())[0], rel=1e-10)
    v = (R @ W).ravel()
    numeric = np.zeros_like(v)
    for i in range(len(v)):
        step = np.zeros_like(v)
        step[i] = 1e-4
        numeric[i] = (loss_v(v + step)[0] - loss_v(v - step)[0]) / 2e-4
    np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-3 * np.abs(numeric).max())


def test_preconditioned_svm_reaches_the_optimum_plain_lbfgs_crawls_to(tmp_path):
    X, y = correlated_blobs(2000, f=100)
    paths, labels = write(tmp_path, X, y, rows=200)
    mean, std, _ = feature_moments(paths)
    standardizer = Standardizer(mean, std)
    G, B, n = gram_statistics(iter_shards(paths, labels), standardizer, 3)
    lam = 1e-3 * n
    start = ridge_solve(G, B, 1e-2 * n)
    shards = lambda: iter_masked_shards(paths, labels)  # noqa: E731
    # the long plain fit is the reference optimum: scipy's own (tight) tolerance
    fits = {name: fit_lbfgs(shards, standardizer, 3, lam, start, iterations, R=R,
                            tolerance=tolerance)
            for name, iterations, R, tolerance in [
                ("plain", 20, None, RELATIVE_TOLERANCE),
                ("preconditioned", 20, preconditioner(G, lam), RELATIVE_TOLERANCE),
                ("plain, long", 5000, None, 2.2e-9)]}
    objective = {name: fit[1]["objective"] for name, fit in fits.items()}
    assert objective["preconditioned"] < objective["plain"]
    assert objective["preconditioned"] == pytest.approx(objective["plain, long"], rel=1e-5)
    assert fits["plain, long"][1]["n_iter"] > 20 * 4  # the plain fit needed many more
    np.testing.assert_allclose(fits["preconditioned"][0], fits["plain, long"][0],
                               atol=2e-2 * np.abs(fits["plain, long"][0]).max())


@pytest.mark.parametrize("method", ["ridge", "l2svm", "softmax"])
def test_streamed_classifier_learns_and_agrees_with_sklearn(tmp_path, method):
    X_all, y_all = blobs(1200, seed=2)
    X, y, X_test, y_test = X_all[:900], y_all[:900], X_all[900:], y_all[900:]
    paths, labels = write(tmp_path, X, y, rows=200)
    weights, summary = fit_streamed_classifier(paths, labels, 3, method=method, random_state=0,
                                               svm_iter=200)
    score = X_test @ weights[:-1] + weights[-1]
    accuracy = (score.argmax(1) == y_test).mean()
    standardized = (X - X.mean(0)) / X.std(0)
    reference = LinearSVC(C=1 / (2 * summary["lam"]), dual=False, tol=1e-6).fit(standardized, y)
    reference_accuracy = reference.score((X_test - X.mean(0)) / X.std(0), y_test)
    assert accuracy > 0.8 > 1 / 3
    assert abs(accuracy - reference_accuracy) <= 0.03
    assert summary["n_train"] == 900 and summary["lam_grid"][:len(LAM_GRID)] == list(LAM_GRID)
    assert len(summary["validation_accuracy"]) == len(summary["lam_grid"])
    if summary["classifier"] != "ridge":
        assert summary["svm"]["n_iter"] >= 1


def test_float32_gram_matrix_makes_the_float64_choices(tmp_path):
    X, y = correlated_blobs(1500, f=40, seed=4)
    paths, labels = write(tmp_path, X, y, rows=300)
    fits = {precision: fit_streamed_classifier(paths, labels, 3, svm_path=2, precision=precision)
            for precision in ("float32", "float64")}
    (single, single_summary), (double, double_summary) = fits["float32"], fits["float64"]
    assert single_summary["validation_accuracy"] == double_summary["validation_accuracy"]
    assert single_summary["classifier"] == double_summary["classifier"]
    assert single_summary["lam/n"] == double_summary["lam/n"]
    np.testing.assert_allclose(single, double, rtol=1e-3, atol=1e-3 * np.abs(double).max())
    with pytest.raises(ValueError, match="precision must be one of"):
        fit_streamed_classifier(paths, labels, 3, precision="float16")


def test_svm_path_chooses_its_own_regulariser_at_or_below_ridges(tmp_path):
    X, y = blobs(900, seed=3)
    paths, labels = write(tmp_path, X, y, rows=200)
    grid = (1e-3, 1e-2, 0.1, 1.0, 10.0)
    lines = []
    weights, summary = fit_streamed_classifier(paths, labels, 3, lam_grid=grid, random_state=1,
                                               svm_iter=30, svm_path=3, svm_path_iter=10,
                                               log=lines.append, grid_extension=0)
    ridge_best = grid[int(np.argmax(summary["validation_accuracy"]))]
    expected = sorted((g for g in grid if g <= ridge_best), reverse=True)[:3]
    path = summary["svm_path"]
    assert [point["lam/n"] for point in path] == expected
    assert all(1 <= point["n_iter"] <= 10 and 0 < point["validation_accuracy"] <= 1
               for point in path)
    # every candidate is reported; the best on the held-out rows is kept, ties to the SVM
    assert summary["candidates"] == [
        *({"classifier": "ridge", "lam/n": g, "validation_accuracy": a}
          for g, a in zip(grid, summary["validation_accuracy"])), *path]
    chosen = max(path + summary["candidates"], key=lambda point: point["validation_accuracy"])
    assert (summary["classifier"], summary["lam/n"]) == (chosen["classifier"], chosen["lam/n"])
    assert summary["lam"] == pytest.approx(chosen["lam/n"] * 900)
    assert sum("L2-SVM path" in line for line in lines) == len(path)
    # one path point: the SVM keeps ridge's regulariser
    _, single = fit_streamed_classifier(paths, labels, 3, lam_grid=grid, random_state=1, svm_iter=5,
                                        svm_path=1, svm_path_iter=5)
    assert [point["lam/n"] for point in single["svm_path"]] == [ridge_best]
    with pytest.raises(ValueError, match="svm_path"):
        fit_streamed_classifier(paths, labels, 3, svm_path=0)
    with pytest.raises(ValueError, match="grid_extension"):
        fit_streamed_classifier(paths, labels, 3, grid_extension=-1)


def noisy_classes(n, f, classes, seed, flipped=0.3):
    """Weakly separated classes with a fraction of the labels drawn at random."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = rng.normal(0, 1, (classes, f))[y] * 0.3 + rng.normal(0, 1, (n, f))
    y = np.where(rng.random(n) < flipped, rng.integers(0, classes, n), y)
    return X.astype(np.float32), y


def test_ridge_is_kept_where_it_beats_the_svm_on_the_held_out_rows(tmp_path):
    X, y = noisy_classes(400, 60, 4, seed=1)
    paths, labels = write(tmp_path, X, y, rows=100)
    lines = []
    weights, summary = fit_streamed_classifier(paths, labels, 4, val_fraction=0.3, random_state=1,
                                               svm_iter=50, svm_path=3, svm_path_iter=20,
                                               grid_extension=0, log=lines.append,
                                               svm_patience=None)
    best = {family: max(point["validation_accuracy"] for point in summary["candidates"]
                        if point["classifier"] == family) for family in ("ridge", "l2svm")}
    assert best["ridge"] > best["l2svm"]
    assert summary["classifier"] == "ridge" and "svm" not in summary
    kept = summary["lam_grid"][int(np.argmax(summary["validation_accuracy"]))]
    assert summary["lam/n"] == kept and any("kept: ridge" in line for line in lines)
    # the kept ridge refitted exactly on every training row
    standardizer = Standardizer(*feature_moments(paths)[:2])
    G, B, n = gram_statistics(iter_shards(paths, labels), standardizer, 4)
    np.testing.assert_allclose(weights, standardizer.fold(ridge_solve(G, B, kept * n)),
                               rtol=1e-4, atol=1e-6)


def test_a_choice_at_the_end_of_the_grid_extends_it(tmp_path):
    # few noisy rows want strong regularisation: ridge's best is the top of a low grid
    X, y = noisy_classes(300, 120, 3, seed=0, flipped=0.2)
    paths, labels = write(tmp_path, X, y, rows=100)
    grid = (1e-4, 1e-3)
    _, fixed = fit_streamed_classifier(paths, labels, 3, method="ridge", lam_grid=grid,
                                       val_fraction=0.3, grid_extension=0)
    assert fixed["lam/n"] == 1e-3 and fixed["extensions"]["ridge"] == {"added": [],
                                                                       "at_edge": "top"}
    lines = []
    _, summary = fit_streamed_classifier(paths, labels, 3, method="ridge", lam_grid=grid,
                                         val_fraction=0.3, grid_extension=3, log=lines.append)
    extension = summary["extensions"]["ridge"]
    assert extension["added"][0] == pytest.approx(1e-2)  # one grid step (x10) past the top
    assert summary["lam_grid"] == pytest.approx([*grid, *extension["added"]])
    scores = summary["validation_accuracy"]
    assert scores[2] > scores[1]  # the first step past the end scored higher
    assert summary["lam/n"] == summary["lam_grid"][int(np.argmax(scores))] > 1e-3
    assert all(point.get("extension") for point in summary["candidates"][2:])
    assert any("ridge grid extended" in line for line in lines)


def test_the_svm_path_starts_from_a_ridge_choice_past_the_grid(tmp_path):
    X, y = noisy_classes(600, 20, 3, seed=0, flipped=0.0)
    paths, labels = write(tmp_path, X, y, rows=200)
    _, summary = fit_streamed_classifier(paths, labels, 3, lam_grid=(3.0, 30.0), val_fraction=0.3,
                                         svm_iter=20, svm_path=2, svm_path_iter=5)
    assert summary["extensions"]["ridge"]["added"] == [0.3, 0.03]  # 0.03 scored no higher
    ridge_kept = summary["lam_grid"][int(np.argmax(summary["validation_accuracy"]))]
    assert ridge_kept == 0.3
    assert [point["lam/n"] for point in summary["svm_path"][:2]] == [0.3, 0.03]


def test_a_final_svm_stopped_by_its_iteration_limit_says_so(tmp_path):
    X, y = correlated_blobs(600, f=20)
    paths, labels = write(tmp_path, X, y, rows=200)
    runs = {}
    for limit in (2, 500):
        lines = []
        _, summary = fit_streamed_classifier(paths, labels, 3, lam_grid=(1e-3, 1e-2), svm_iter=limit,
                                             svm_path=1, grid_extension=0, log=lines.append)
        runs[limit] = summary["svm"], lines
    (short, short_log), (long, long_log) = runs[2], runs[500]
    assert short["n_iter"] == 2 and not short["converged"] and short["stopped_at_limit"]
    assert any("did NOT converge" in line and "limit (2 iterations)" in line for line in short_log)
    assert long["converged"] and long["n_iter"] < 500
    assert not any("NOT converge" in line for line in long_log)


def test_bad_shards_are_named(tmp_path):
    from terafeat.distributed.shards import ShardError, load_shard
    X, y = blobs(100)
    X[60, 3] = np.nan
    paths, labels = write(tmp_path, X, y, rows=50)
    with pytest.raises(ShardError, match="f-1.npy.*NaN"):
        fit_streamed_classifier(paths, labels, 3)
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ShardError, match="garbage.npy"):
        load_shard(tmp_path / "garbage.npy", mapped=True)
    save_array(tmp_path / "flat.npy", np.zeros(5, np.float32))
    with pytest.raises(ShardError, match="flat.npy.*2-D"):
        load_shard(tmp_path / "flat.npy", mapped=True)


def test_validation_split_keeps_each_image_on_one_side():
    rng = np.random.default_rng(0)
    images = rng.permutation(np.repeat(np.arange(2000), 2))  # every image listed twice
    groups = np.split(images, [1500, 2600])  # three shards
    masks = validation_masks(groups, 0.1, random_state=4)
    held = np.concatenate(masks)
    assert 0.07 < held.mean() < 0.13
    for image in range(2000):
        assert len(set(held[images == image])) == 1
    assert all(np.array_equal(a, b) for a, b in zip(masks, validation_masks(groups, 0.1, 4)))
    assert [len(g) for g in row_groups([np.zeros(3), np.zeros(2)])] == [3, 2]
    assert np.array_equal(np.concatenate(row_groups([np.zeros(3), np.zeros(2)])), np.arange(5))


def test_mismatched_labels_name_the_shard(tmp_path):
    X, y = blobs(50)
    paths, labels = write(tmp_path, X, y, rows=50)
    with pytest.raises(ValueError, match="f-0.npy: 50 feature rows but 49 labels"):
        list(iter_shards(paths, [labels[0][:49]]))


def test_top_k_accuracy():
    score = np.array([[0.1, 0.5, 0.4], [0.9, 0.02, 0.08]])
    assert top_k_accuracy(score, np.array([2, 1]), 1) == 0.0
    assert top_k_accuracy(score, np.array([2, 1]), 2) == 0.5
    assert top_k_accuracy(score, np.array([2, 1]), 5) == 1.0


def test_top_confusions_and_streamed_evaluation(tmp_path):
    from terafeat.classification.scoring import (
        evaluate_streamed,
        top_confusions,
    )
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    guess = np.array([1, 1, 0, 0, 1, 1, 0, 1, 2])
    assert top_confusions(truth, guess, 2) == [{"true": 0, "predicted": 1, "count": 2},
                                              {"true": 2, "predicted": 1, "count": 2}]
    X = np.eye(3, dtype=np.float32)[guess]  # scores = one-hot of the guess
    paths, labels = write(tmp_path, X, truth, rows=4)
    weights = np.vstack([np.eye(3), np.zeros((1, 3))])
    got_truth, predicted, metrics = evaluate_streamed(paths, labels, weights, top_k=2)
    assert predicted.tolist() == guess.tolist() and got_truth.tolist() == truth.tolist()
    assert metrics["top1"] == pytest.approx(3 / 9) and metrics["n"] == 9
    # per class: 1 of 3, 1 of 2, 1 of 4 right; averaged with each class counting once
    assert metrics["mean_class_accuracy"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 4) / 3)


def test_streamed_evaluation_averages_the_rows_of_one_image(tmp_path):
    from terafeat.classification.scoring import evaluate_streamed
    # image 7: two rows (it and its mirror image), each leaning to a different wrong
    # class, both giving the right one 0.5: their mean picks it; image 3: one row
    X = np.array([[0.0, 0.6, 0.5], [0.9, 0.0, 0.5], [0.2, 0.1, 0.0]], np.float32)
    truth = np.array([2, 2, 0])
    paths, labels = write(tmp_path, X, truth, rows=2)
    weights = np.vstack([np.eye(3), np.zeros((1, 3))])
    got_truth, predicted, metrics = evaluate_streamed(paths, labels, weights, top_k=1,
                                                      groups=[np.array([7, 7]), np.array([3])])
    assert got_truth.tolist() == [0, 2] and predicted.tolist() == [0, 2]
    assert metrics == {"top1": 1.0, "mean_class_accuracy": 1.0, "n": 2}
    _, per_row, plain = evaluate_streamed(paths, labels, weights, top_k=1)
    assert per_row.tolist() == [1, 0, 0] and plain["top1"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 image ids for 3 scored rows"):
        evaluate_streamed(paths, labels, weights, groups=[np.array([7, 7]), np.array([])])


def test_early_stopping_keeps_the_best_held_out_iterate(tmp_path):
    X, y = noisy_classes(900, 40, 6, seed=2, flipped=0.1)
    paths, labels = write(tmp_path, X, y, rows=300)
    standardizer = Standardizer(*feature_moments(paths)[:2])
    held_out = validation_masks(row_groups(labels), 0.3, 0)
    fitting = [~mask for mask in held_out]
    G, B, n_fit = gram_statistics(iter_shards(paths, labels, fitting), standardizer, 6)
    lam = 1e-3 * n_fit
    seen = []

    def score(weights):
        from terafeat.classification.scoring import held_out_accuracy
        seen.append(held_out_accuracy(iter_shards(paths, labels, held_out), standardizer,
                                      weights, 6)[0])
        return seen[-1]

    weights, summary = fit_lbfgs(lambda: iter_masked_shards(paths, labels, fitting),
                                 standardizer, 6, lam, ridge_solve(G, B, lam), 200,
                                 R=preconditioner(G, lam), held_out=score, patience=3)
    best = int(np.argmax(seen))  # the first of the highest
    assert summary["n_iter"] == best + 1 and summary["held_out_accuracy"] == seen[best]
    assert summary["stopped_early"] and len(seen) == best + 1 + 3 < 200
    assert score(weights) == seen[best]  # the returned weights are that iterate's
    _, plain = fit_lbfgs(lambda: iter_masked_shards(paths, labels, fitting), standardizer, 6,
                         lam, ridge_solve(G, B, lam), 200, R=preconditioner(G, lam))
    assert plain["n_iter"] > summary["n_iter"] and "stopped_early" not in plain
    runs = [fit_streamed_classifier(paths, labels, 6, val_fraction=0.3, svm_patience=patience,
                                    grid_extension=0, svm_path=2)[1] for patience in (3, None)]
    early, full = ([point["n_iter"] for point in run["svm_path"]] for run in runs)
    assert early[0] < full[0]
