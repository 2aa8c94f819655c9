"""Figures and the HTML / Markdown report of a run."""
from __future__ import annotations

import base64
import html
import io
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from terafeat.atomic_files import save_bytes, save_text


def pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def tile_filters(W: np.ndarray, patch_shape: tuple[int, ...], columns: int | None = None,
                 border: int = 1) -> np.ndarray:
    """Filters (k, d) as one image grid, each filter scaled to [0, 1] on its own.

    patch_shape: (p, p) for grey or (p, p, 3) for colour filters.  Returns a
    float (rows * (p + border) + border, columns * (p + border) + border[, 3])
    image with a white border.
    """
    k = W.shape[0]
    if int(np.prod(patch_shape)) != W.shape[1]:
        raise ValueError(f"filters of {W.shape[1]} values do not fit patch shape {patch_shape}")
    columns = columns or int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / columns))
    p, q = patch_shape[:2]
    grid = np.ones((rows * (p + border) + border, columns * (q + border) + border) + tuple(patch_shape[2:]))
    filters = W.reshape((k,) + tuple(patch_shape)).astype(np.float64)
    axes = tuple(range(1, filters.ndim))
    low = filters.min(axis=axes, keepdims=True)
    span = filters.max(axis=axes, keepdims=True) - low
    filters = (filters - low) / np.where(span > 0, span, 1.0)
    for i, image in enumerate(filters):
        r, c = divmod(i, columns)
        top, left = border + r * (p + border), border + c * (q + border)
        grid[top:top + p, left:left + q] = image
    return grid


def save_image(path, image: np.ndarray, scale: int = 4) -> Path:
    """A float image in [0, 1] (h, w[, 3]) as PNG, each pixel a ``scale`` x ``scale`` block."""
    from PIL import Image
    pixels = np.clip(np.asarray(image) * 255 + 0.5, 0, 255).astype(np.uint8)
    pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return save_bytes(path, buffer.getvalue())


def save_line_plot(path, series: dict[str, np.ndarray], xlabel: str, ylabel: str,
                   title: str, logy: bool = False) -> Path:
    """Curves (name -> y values, x = 0, 1, ...) as a PNG figure."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, values in series.items():
        axes.plot(np.arange(len(values)), values, label=name)
    if logy:
        axes.set_yscale("log")
    axes.set(xlabel=xlabel, ylabel=ylabel, title=title)
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return save_bytes(path, buffer.getvalue())


def save_bar_plot(path, values: dict[str, float], errors: dict[str, float] | None,
                  ylabel: str, title: str) -> Path:
    """Named values (with optional error bars) as a PNG bar chart."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    names = list(values)
    axes.bar(names, [values[n] for n in names],
             yerr=[errors[n] for n in names] if errors else None, capsize=4, color="#4878a8")
    for i, name in enumerate(names):
        axes.text(i, values[name], f"{values[name]:.3f}", ha="center", va="bottom")
    axes.set(ylabel=ylabel, title=title)
    low = min(values.values())
    axes.set_ylim(max(0.0, low - 0.1), 1.0 + 0.02)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return save_bytes(path, buffer.getvalue())


def save_grouped_bar_plot(path, values: dict[str, dict[str, float]], ylabel: str,
                          title: str) -> Path:
    """Bars of series (name -> {category: value}), one group of bars per category, as PNG."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    categories = list(next(iter(values.values())))
    width = 0.8 / len(values)
    for i, (name, series) in enumerate(values.items()):
        x = np.arange(len(categories)) + (i - (len(values) - 1) / 2) * width
        bars = axes.bar(x, [series[c] for c in categories], width, label=name)
        axes.bar_label(bars, fmt="%.3g", fontsize=8)
    axes.set_xticks(np.arange(len(categories)), categories)
    axes.set(ylabel=ylabel, title=title)
    axes.legend()
    return save_figure(path, figure)


def save_panel_curves(path, panels: dict[str, dict[str, tuple]], xlabel: str, ylabel: str,
                      title: str) -> Path:
    """One panel per name side by side, each with curves name -> (x, y, y errors) drawn
    with error bars, as a PNG; the panels share the y axis."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1, 3.2), dpi=100,
                                sharey=True, squeeze=False)
    for axis, (panel, curves) in zip(axes[0], panels.items()):
        for name, (x, y, errors) in curves.items():
            axis.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=name)
        axis.set(title=panel, xlabel=xlabel)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8)
    figure.suptitle(title)
    return save_figure(path, figure)


def markdown_table(rows: list[dict]) -> str:
    """Rows of equal keys as a Markdown table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(row[key]) for key in keys) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_html_report(path, title: str, sections: list[tuple[str, list]]) -> Path:
    """A self-contained HTML page: figures inlined as base64 PNG.

    sections: (heading, items) where an item is a str (a paragraph), a list of
    dicts (a table), a Path to a PNG (a figure, inlined) or a tuple of Paths
    (figures side by side).
    """
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, items in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for item in items:
            body.append(_html_item(item))
    page = ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
            "th{background:#eee}img{max-width:100%;image-rendering:pixelated}"
            "</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    return save_text(path, page)


def _html_item(item) -> str:
    if isinstance(item, dict):
        raise TypeError("a table is a list of dicts inside a section's items: "
                        f"[[{{...}}, ...]], not a bare dict ({sorted(item)})")
    if isinstance(item, tuple):
        return "<div style='display:flex;gap:1em'>" + "".join(map(_html_item, item)) + "</div>"
    if isinstance(item, Path):
        data = base64.b64encode(item.read_bytes()).decode("ascii")
        return f"<figure><img alt='{html.escape(item.name)}' src='data:image/png;base64,{data}'>" \
               f"<figcaption>{html.escape(item.name)}</figcaption></figure>"
    if isinstance(item, list):
        if not item:
            return ""
        keys = list(item[0])
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row[k]))}</td>" for k in keys)
                       + "</tr>" for row in item)
        return f"<table><tr>{head}</tr>{rows}</table>"
    return f"<p>{html.escape(str(item))}</p>"


#: Distributions whose versions the report's environment table lists.
PACKAGES = ("terafeat", "numpy", "scipy", "scikit-learn", "scikit-image", "opencv-python-headless",
            "opencv-python", "pandas", "matplotlib", "dask", "distributed", "prefect", "pydantic")
CACHE_NOTE = ("Source \"cache\": the stage's outputs came from the stage cache, computed by an "
              "earlier run with the same inputs, parameters and code; the seconds and other "
              "numbers it reports (e.g. training time) are that run's, and its time here is the "
              "lookup's.")


def environment() -> dict:
    """Where a run ran: Python, platform, cores, and the versions of those of the
    packages that shape its numbers which are installed."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "cores": os.cpu_count(), "usable cores": usable,
            **versions}


def timing_rows(results: dict) -> list[dict]:
    """Rows {stage, seconds[, source]} of ``results["timings"]``; source ("cache" or
    "computed", "-" for a stage without a cache) when ``results["cache"]`` names any."""
    sources = results.get("cache") or {}
    return [{"stage": stage, "seconds": seconds,
             **({"source": sources.get(stage, "-")} if sources else {})}
            for stage, seconds in results["timings"].items()]


#: How the memory table names the processes of ``results["peak_memory"]`` (stage keys).
PROCESSES = {"flow": "the flow's process (every stage run in it)",
             "encoding": "any feature-extraction process (Dask worker, or the flow's)",
             "training": "any Dask worker that trained the layer"}


def memory_rows(peak_memory: dict[str, int]) -> list[dict]:
    """One row per process of a run's ``peak_memory`` ({name: bytes}): its peak, GB."""
    return [{"process": PROCESSES.get(name, f"any Dask worker of stage {name!r}"),
             "peak memory (GB)": round(n_bytes / 1e9, 3)}
            for name, n_bytes in peak_memory.items()]


def adaptation_items(summary: dict | None, read_as: str) -> list:
    """Report items of an ``ImageAdaptations.summary()``: what reading did to the images
    to give them the shape ``read_as`` (e.g. "32x32 RGB"), with counts."""
    if summary is None:  # a stage computed before images were counted
        return ["not counted by the run that computed this stage"]
    if not summary["images"]:
        return ["no images read"]
    return [f"Every image is read as {read_as}. Of the {summary['images']} distinct images "
            f"read, of {summary['distinct_sizes']} stored size(s) (smallest "
            f"{summary['smallest']}, largest {summary['largest']}):",
            [{"adaptation": what, "images": summary[key]} for key, what in (
                ("centre_cropped", "centre-cropped to the target's aspect"),
                ("resized", "resized"), ("grey_to_colour", "grey, copied to three channels"),
                ("colour_to_grey", "colour, read as grey"))],
            "Most common stored sizes (width x height):",
            [{"size": size, "images": n} for size, n in summary["common_sizes"]],
            "Stored modes (Pillow): " + ", ".join(f"{mode} {n}" for mode, n in
                                                  summary["modes"].items()) + "."]


def run_sections(results: dict) -> list[tuple[str, list]]:
    """The sections every report ends with: peak memory per process (where the results
    carry it), timings (marking cached stages), the environment
    (``results["environment"]``, else this process's) and parameters."""
    cached = "cache" in (results.get("cache") or {}).values()
    memory = results.get("peak_memory")
    return [
        *([("Peak memory per process", [
            memory_rows(memory), "Each process's high-water mark of resident memory over its "
            "life; a stage served from the stage cache reports the run that computed it."])]
          if memory else []),
        ("Timing per stage", [CACHE_NOTE, timing_rows(results)] if cached
         else [timing_rows(results)]),
        ("Environment", [[{"item": key, "value": str(value)} for key, value in
                          (results.get("environment") or environment()).items()]]),
        ("Parameters", [[{"parameter": key, "value": str(value)}
                         for key, value in results["parameters"].items()]]),
    ]


def from_cache(results: dict, stage: str) -> str:
    """" (from the stage cache: an earlier run's numbers)" when ``stage`` was a cache hit."""
    return (" (from the stage cache: an earlier run's numbers)"
            if (results.get("cache") or {}).get(stage) == "cache" else "")


def resumed(training: dict) -> str:
    """" (resumed ... at iteration N)" when a training stage resumed an interrupted fit."""
    start = training.get("resumed_from") or 0
    return (f" (resumed from the checkpoint of an interrupted run at iteration {start})"
            if start else "")


def save_figure(path, figure) -> Path:
    """Save a matplotlib figure as PNG at ``path`` (atomically) and close it."""
    plt = pyplot()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return save_bytes(path, buffer.getvalue())


def save_confusion_plot(path, confusion, class_names: list[str], title: str) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with counts, as a PNG."""
    plt = pyplot()
    confusion = np.asarray(confusion)
    figure, axes = plt.subplots(figsize=(4, 3.5), dpi=100)
    axes.imshow(confusion, cmap="Blues")
    for (i, j), count in np.ndenumerate(confusion):
        axes.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > confusion.max() / 2 else "black")
    axes.set(xticks=range(len(class_names)), yticks=range(len(class_names)),
             xticklabels=class_names, yticklabels=class_names, xlabel="predicted",
             ylabel="true", title=title)
    return save_figure(path, figure)
