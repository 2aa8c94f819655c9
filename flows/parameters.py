"""Flow parameters, Prefect's way: each flow function takes its parameters as typed
keyword arguments (``Annotated[type, Field(bounds, description)]``), so the Prefect UI
shows one field per parameter and ``prefect deployment run FLOW/DEP -p max_iter=50``
works.  :func:`parameter_model` builds from that signature the one pydantic model that
both the flow (at its start) and the CLI (before any work) validate through, with the
flow's checks across parameters.

The run options every training flow shares are declared here once, with one meaning
per name across the flows (the glossary, ``docs/parameters.md``, lists them all).
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Annotated, Literal, get_args, get_origin, get_type_hints

import psutil
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from terafeat.datasets.splits import check_train_share

Lam = Annotated[float, Field(gt=0, allow_inf_nan=False, description="weight of RICA's "
                            "reconstruction term")]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="seed of every random choice")]
Dtype = Annotated[Literal["float32", "float64"], Field(
    description="floating-point type of training and features")]
OutputRoot = Annotated[str, Field(min_length=1, description="reports go to "
                                  "<output_root>/<flow>/<run>/")]
CacheRoot = Annotated[str | None, Field(description="stage cache folder: a re-run with the "
                                        "same inputs, parameters and code skips the stage "
                                        "(empty or null: no cache)")]
Backend = Annotated[Literal["local", "dask"], Field(description="where layers train: local "
                                                    "(numpy in this process) or dask (shards "
                                                    "on a Dask cluster)")]
DaskAddress = Annotated[str | None, Field(description="Dask scheduler address "
                                          "(tcp://host:8786); null: $TERAFEAT_DASK_ADDRESS, "
                                          "else a local cluster of one worker per core")]
Solver = Annotated[Literal["lbfgs", "downpour"], Field(description="with backend=dask: exact "
                                                       "distributed L-BFGS, or Downpour SGD "
                                                       "(asynchronous, parameter server)")]
SplitTrain = Annotated[float, Field(gt=0, allow_inf_nan=False, description="a single "
                                    "class-folder tree split here: training images per "
                                    "class, a count (a whole number, e.g. 30, the Caltech-101 "
                                    "convention) or a fraction in (0, 1); the rest are test "
                                    "images (stratified, seeded by seed)")]


def split_train_is_a_count_or_fraction(params: BaseModel) -> None:
    """The check of :data:`SplitTrain`: a whole count >= 1 or a fraction in (0, 1)."""
    check_train_share(params.split_train)


#: The run options of every flow that trains a layer, in the order flows declare them.
RUN_OPTIONS = ("seed", "dtype", "output_root", "cache_root", "backend", "dask_address", "solver")

#: A check across parameters: takes the validated model, raises ValueError naming the problem.
Check = Callable[[BaseModel], None]


#: (s, y) pairs scipy's L-BFGS keeps in ``minimize_rica`` (its ``maxcor``).
LBFGS_PAIRS = 20


def training_bytes(n_rows: int, dimensions: int) -> int:
    """Memory of the training rows (patches, frames): float32 samples, whitening's float64
    copy and its centred copy (4 + 8 + 8 bytes a value)."""
    return n_rows * dimensions * 20


def rica_bytes(n_features: int, dimensions: int) -> int:
    """Memory of a RICA fit's optimiser: L-BFGS's history and a few (k, d) float64 arrays."""
    return (2 * LBFGS_PAIRS + 6) * n_features * dimensions * 8


def fits_in_memory(estimate: Callable[[BaseModel], dict[str, int]]) -> Check:
    """A check refusing, before any work, a request whose largest arrays cannot fit.

    ``estimate(params)`` names each large array (with the parameters that size it) and
    its bytes; their sum must fit in this machine's physical memory.
    """
    def fits_in_memory(params) -> None:
        needs = estimate(params)
        total = psutil.virtual_memory().total
        if sum(needs.values()) > total:
            largest = max(needs, key=needs.get)
            raise ValueError(
                f"this run needs about {sum(needs.values()) / 2**30:.1f} GiB, more than this "
                f"machine's {total / 2**30:.1f} GiB; the largest part: {largest}, "
                f"{needs[largest] / 2**30:.1f} GiB")
    return fits_in_memory


def parameter_model(flow_function: Callable, checks: tuple[Check, ...] = ()) -> type[BaseModel]:
    """The frozen pydantic model of ``flow_function``'s keyword arguments.

    Fields keep each argument's annotation (bounds, description) and default; extra
    names are refused; ``checks`` run after the fields validate.
    """
    function = inspect.unwrap(getattr(flow_function, "fn", flow_function))
    hints = get_type_hints(function, include_extras=True)
    fields = {name: (hints[name], parameter.default)
              for name, parameter in inspect.signature(function).parameters.items()}
    validators = {}
    for check in checks:
        def run_check(model, check=check):
            check(model)
            return model
        validators[check.__name__] = model_validator(mode="after")(run_check)
    title = "".join(part.title() for part in function.__name__.split("_")) + "Parameters"
    return create_model(title, __config__=ConfigDict(frozen=True, extra="forbid"),
                        __validators__=validators, **fields)


def documented(function: Callable) -> Callable:
    """Write each parameter's ``Field`` description into the function's docstring as a
    Google-style ``Args:`` section: Prefect reads descriptions for its UI form from there.
    Apply it below ``@flow``."""
    hints = get_type_hints(function, include_extras=True)
    lines = []
    for name in inspect.signature(function).parameters:
        description = next((item.description for item in getattr(hints[name], "__metadata__", ())
                            if getattr(item, "description", None)), None)
        if description:
            lines.append(f"    {name}: {description}")
    if lines:
        doc = inspect.cleandoc(function.__doc__ or "")
        function.__doc__ = f"{doc}\n\nArgs:\n" + "\n".join(lines) + "\n"
    return function


def describe(model: type[BaseModel]) -> list[dict]:
    """One row per parameter: name, type, default, bounds and description (``terafeat params``)."""
    schema = model.model_json_schema()
    rows = []
    for name, field in model.model_fields.items():
        spec = schema["properties"][name]
        bounds = {key: spec[key] for key in ("minimum", "exclusiveMinimum", "maximum",
                                             "exclusiveMaximum", "minLength", "maxLength",
                                             "minItems", "maxItems") if key in spec}
        rows.append({"name": name, "type": _type_name(field.annotation),
                     "default": field.default, "bounds": bounds,
                     "description": field.description or ""})
    return rows


def _without_item_bounds(annotation):
    """``tuple[Annotated[float, Field(...)], ...]`` as ``tuple[float, ...]``: bounds of a
    list's items are not part of its type's name."""
    if get_origin(annotation) is Annotated:
        return _without_item_bounds(get_args(annotation)[0])
    if get_origin(annotation) is tuple:
        return tuple[tuple(map(_without_item_bounds, get_args(annotation)))]
    return annotation


def _type_name(annotation) -> str:
    annotation = _without_item_bounds(annotation)
    return (str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", ""))


def validation_message(error, model) -> str:
    """A pydantic ValidationError of a parameter model as one line: each problem with
    the parameter, the value given, and the valid names or range."""
    problems = []
    for item in error.errors():
        name = ".".join(map(str, item["loc"]))
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(name, model.model_fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown parameter {name!r}{hint}; parameters: "
                            f"{', '.join(model.model_fields)}")
        elif name:
            problems.append(f"{name}={item.get('input')!r}: {item['msg']}")
        else:  # a check across parameters
            problems.append(item["msg"].removeprefix("Value error, "))
    return "; ".join(problems)
