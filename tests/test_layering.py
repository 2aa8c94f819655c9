"""The layering rule of docs/layout.md, checked: the import contracts of pyproject.toml
(import-linter) and the size of the core's modules."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A module longer than this holds more than one idea: split it.
MAX_CORE_LINES = 500


def test_import_contracts_are_kept():
    checked = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command;"
                              " lint_imports_command()"], cwd=REPO, capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "0 broken" in checked.stdout


def test_no_core_module_outgrows_one_idea():
    sizes = {str(path.relative_to(REPO)): len(path.read_text().splitlines())
             for path in (REPO / "terafeat").rglob("*.py")}
    assert len(sizes) > 30  # the core was found
    assert {path: n for path, n in sizes.items() if n > MAX_CORE_LINES} == {}
