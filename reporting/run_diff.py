"""Two runs side by side: headline numbers, parameters, timings, environment and
figures, from each run's folder (``results.json`` and its PNG figures)."""
from __future__ import annotations

from pathlib import Path

from reporting.toolkit import write_html_report
from terafeat.atomic_files import load_json


def load_run(run_dir) -> dict:
    """A run folder's ``results.json``; ValueError naming the folder if it has none."""
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no results.json here: not a finished run folder")
    try:
        return load_json(path)
    except ValueError as error:
        raise ValueError(f"{path}: not readable JSON ({error})") from error


def _row_key(row: dict) -> str:
    """The column naming a headline row: "features", else its first text column."""
    if "features" in row:
        return "features"
    return next((key for key, value in row.items() if isinstance(value, str)), next(iter(row)))


def headline_rows(a: dict, b: dict) -> list[dict]:
    """One row per headline row (named by its "features" or first text column) and
    measure: the value in A, in B, and B - A where both are numbers."""
    rows = []
    keyed = [{str(row[_row_key(row)]): row for row in run.get("headline", [])} for run in (a, b)]
    for name in dict.fromkeys([*keyed[0], *keyed[1]]):
        row_a, row_b = keyed[0].get(name, {}), keyed[1].get(name, {})
        label = _row_key(row_a or row_b)
        for measure in dict.fromkeys([*row_a, *row_b]):
            if measure == label:
                continue
            value_a, value_b = row_a.get(measure), row_b.get(measure)
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in (value_a, value_b))
            rows.append({"row": name, "measure": measure, "A": _text(value_a),
                         "B": _text(value_b), "B - A": _text(value_b - value_a) if numbers else ""})
    return rows


def paired_rows(a: dict, b: dict, label: str) -> list[dict]:
    """Keys of two flat dicts (parameters, environment): A's value, B's, whether they
    differ; the differing keys first."""
    rows = [{label: key, "A": _text(a.get(key)), "B": _text(b.get(key)),
             "differs": "yes" if a.get(key) != b.get(key) else ""}
            for key in dict.fromkeys([*a, *b])]
    return sorted(rows, key=lambda row: row["differs"] != "yes")


def timing_pairs(a: dict, b: dict) -> list[dict]:
    """Seconds per stage in A and B, with where each came from (stage cache or computed)."""
    rows = []
    for stage in dict.fromkeys([*a.get("timings", {}), *b.get("timings", {})]):
        row = {"stage": stage}
        for name, run in (("A", a), ("B", b)):
            row[f"{name} seconds"] = run.get("timings", {}).get(stage, "")
            row[f"{name} source"] = (run.get("cache") or {}).get(stage, "-")
        rows.append(row)
    return rows


def _text(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def compare_report(run_a, run_b, path) -> Path:
    """A self-contained HTML page comparing run folders ``run_a`` and ``run_b`` at ``path``."""
    a, b = load_run(run_a), load_run(run_b)
    names = {"A": Path(run_a).name, "B": Path(run_b).name}
    runs = [{"": key, "flow": run.get("flow", "?"), "run": names[key], "folder": str(Path(folder))}
            for key, run, folder in (("A", a, run_a), ("B", b, run_b))]
    sections = [("Runs", [runs] + ([f"Different flows ({a.get('flow')} and {b.get('flow')}): "
                                    "only the rows they share line up."]
                                   if a.get("flow") != b.get("flow") else []))]
    sections.append(("Headline numbers", [headline_rows(a, b) or "no headline numbers"]))
    figures = sorted({p.name for p in Path(run_a).glob("*.png")} &
                     {p.name for p in Path(run_b).glob("*.png")})
    sections.append(("Figures (A left, B right)",
                     [(Path(run_a) / name, Path(run_b) / name) for name in figures]
                     or ["no figure in both runs"]))
    sections.append(("Parameters", [paired_rows(a.get("parameters", {}), b.get("parameters", {}),
                                                "parameter")]))
    sections.append(("Timing per stage", [timing_pairs(a, b)]))
    sections.append(("Environment", [paired_rows(a.get("environment") or {},
                                                 b.get("environment") or {}, "item")]))
    title = f"terafeat: {names['A']} (A) beside {names['B']} (B)"
    return write_html_report(path, title, sections)
