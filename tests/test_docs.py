"""The docs stay true: every flow has a page listing exactly its parameters, the README's
flow table names every flow, no parameter description carries a measured figure, and every
number quoted from a benchmark equals its results file."""
import re
from pathlib import Path

import pytest

from flows.parameters import describe
from flows.registry import FLOWS, load_flow

REPO = Path(__file__).resolve().parents[1]
#: A measured history: a number with a unit of time or memory, or a score with decimals.
MEASURED = re.compile(r"\d+(\.\d+)? ?(min|minutes|seconds|s|GB|MB|GiB)\b|\b0\.\d{3,}\b"
                      r"|\bscored\b|\bmeasured\b")


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_each_flow_page_lists_exactly_its_parameters_and_stages(name):
    page = (REPO / "docs" / "flows" / f"{name}.md").read_text()
    _, plan = load_flow(name)
    listed = set(re.findall(r"^\| `(\w+)` \|", page, re.M))
    stage_names = {stage.name for stage in (*plan.stages, plan.report)}
    parameters = set(plan.model.model_fields)
    assert parameters - listed == set(), "parameters missing from the page"
    assert listed - parameters - {n.replace("-", "_") for n in stage_names} == set(), \
        "the page lists parameters the flow does not have"
    for stage in plan.stages:
        assert f"`{stage.name}`" in page, f"stage {stage.name} missing from the page"


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_descriptions_say_what_a_parameter_does_not_what_it_measured(name):
    _, plan = load_flow(name)
    for row in describe(plan.model):
        assert row["description"], f"{name}.{row['name']} has no description"
        assert not MEASURED.search(row["description"]), f"{name}.{row['name']}: {row['description']}"


def test_readme_table_names_every_flow_on_one_row_each():
    readme = (REPO / "README.md").read_text()
    table = re.search(r"\| flow \|.*?\n\n", readme, re.S).group(0)
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert sorted(re.match(r"\| `(\w+)`", row).group(1) for row in rows) == sorted(FLOWS)
    for name in FLOWS:
        assert (REPO / "docs" / "flows" / f"{name}.md").is_file()


def test_every_quoted_benchmark_number_is_its_results_files_value():
    from bench.results import QUOTE, quoted_value, quoting_documents
    quotes = [(document.name, match) for document in quoting_documents()
              for match in QUOTE.finditer(document.read_text())]
    assert quotes, "the README quotes the quickstart benchmark"
    for document, match in quotes:
        assert match["value"] == quoted_value(match["name"], match["key"], match["format"]), \
            f"{document}: {match[0]} is stale: run python bench/results.py"
