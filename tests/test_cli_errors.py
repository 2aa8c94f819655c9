"""Bad input to the ``terafeat`` command: one line on stderr naming the problem and
the valid choices, exit status 2."""
import math
import typing

import numpy as np
import pytest
from pydantic import ValidationError

from flows.cli import main
from flows.quickstart import PLAN
from flows.registry import FLOWS, load_flow
from terafeat.atomic_files import save_array, save_json


def _one_line_error(capsys, argv) -> str:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["run", "quickstartt"], "invalid choice: 'quickstartt' (choose from " + ", ".join(
        f"'{name}'" for name in sorted(FLOWS)) + ")"),
    (["run", "quickstart", "--set", "maxiter=5"],
     "unknown parameter 'maxiter' (did you mean 'max_iter'?); parameters: images, patch_size"),
    (["run", "quickstart", "--set", "max_iter=many"], "max_iter='many': Input should be a valid "
                                                       "integer"),
    (["run", "quickstart", "--set", "max_iter=0"], "max_iter=0: Input should be greater than or "
                                                    "equal to 1"),
    (["run", "histology", "--set", "colour_mode=lab"], "colour_mode='lab': Input should be "
                                                        "'rgb', 'hed', 'he' or 'grey'"),
    (["run", "quickstart", "--set", "n_features=10"], "group_size 4 must divide n_features 10"),
    (["run", "quickstart", "--set", "max_iter"], "expected key=value, got 'max_iter'"),
    (["run", "imagenet", "--set", "alpha=inf"], "alpha='inf': Input should be a finite number"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["data", "fetch", "cifar"], "unknown data set 'cifar'; known: cifar10, cifar100"),
    (["run", "imagenet", "--set", "n_patches=10000000000"], "the largest part: the patches "
                                                            "(n_patches=10000000000 x 108 values)"),
    (["run", "imagenet", "--set", "n_features=200000"], "the largest part: the classifier's "
                                                        "1600001 x 1600001 Gram matrix and factor"),
    (["run", "quickstart", "--dask-address", "tcp://127.0.0.1:9"],
     "cannot reach the Dask scheduler at tcp://127.0.0.1:9: Connection refused"),
])
def test_bad_input_is_one_line_listing_the_choices(capsys, argv, expected):
    assert expected in _one_line_error(capsys, argv)


def test_task_parameters_are_checked_the_same_way(capsys, tmp_path):
    save_json(tmp_path / "results.json", {"flow": "quickstart",
                                          "parameters": PLAN.model().model_dump(mode="json"),
                                          "run_dir": str(tmp_path)})
    (tmp_path / "patches.npy").write_bytes(b"")
    err = _one_line_error(capsys, ["task", "whiten", "--run", str(tmp_path),
                                   "--whitening-eps", "-1"])
    assert "invalid parameters for whiten: whitening_eps=-1: Input should be greater than or " \
           "equal to 0" in err
    err = _one_line_error(capsys, ["task", "whitten", "--run", str(tmp_path)])
    assert "has no stage 'whitten'; stages: sample-patches, whiten, train-rica, evaluate-faces" \
        in err


def _bad_values(annotation) -> list:
    """Values a parameter of this type must refuse: non-finite floats, negative seeds and
    counts, empty lists."""
    if annotation is float:
        return [math.inf, -math.inf, math.nan]
    if annotation is int:
        return [-1]
    if typing.get_origin(annotation) is tuple:
        element = typing.get_args(annotation)[0]
        return [()] + [(value,) for value in _bad_values(element) if element is float]
    return []


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_parameter_models_refuse_non_finite_numbers_negative_counts_and_empty_lists(name):
    model = load_flow(name)[1].model
    for field, info in model.model_fields.items():
        for value in _bad_values(info.annotation):
            with pytest.raises(ValidationError, match=field):
                model(**{field: value})


def test_task_data_too_large_for_the_dtype_is_one_line(capsys, tmp_path):
    save_json(tmp_path / "results.json", {"flow": "quickstart",
                                          "parameters": PLAN.model().model_dump(mode="json"),
                                          "run_dir": str(tmp_path),
                                          "patches": str(tmp_path / "patches.npy")})
    patches = np.random.default_rng(0).standard_normal((100, 64)).astype(np.float32)
    save_array(tmp_path / "patches.npy", patches * np.float32(1e30))
    err = _one_line_error(capsys, ["task", "whiten", "--run", str(tmp_path), "--output-root",
                                   str(tmp_path / "debug")])
    assert "overflows float32" in err and "rescale the data" in err
