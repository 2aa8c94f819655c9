"""The "Why RICA?" comparison's pieces (terafeat.analysis.why_rica; bench/why_rica.py runs it)."""
import pytest

from terafeat.analysis.why_rica import check_table, measured_checks, why_rica


@pytest.fixture(scope="module")
def comparison():
    return why_rica(n_patches=1000, max_iter=10, n_trajectories=200, n_folds=2,
                    plan=(("ISA", 1), ("RICA", 1)), progress=lambda message: None)


def test_comparison_rows_hold_the_measurements(comparison):
    rows = {row["method"]: row for row in comparison["rows"]}
    assert set(rows) == {"ISA (64)", "RICA (64)"}
    for row in rows.values():
        assert row["train seconds"] > 0 and 0.5 <= row["faces accuracy"] <= 1.0
        assert row["output units"] == 16  # groups of 4
        for key in ("output invariance translation", "output invariance rotation"):
            assert 0 <= row[key] <= 100  # at most 1 / firing rate
    table = check_table(comparison)
    assert [row["talk: fast"] for row in table] == ["✗", "✓"]


def test_measured_checks_follow_the_stated_rules():
    def row(name, family, k, seconds, invariance):
        return {"method": name, "family": family, "simple units": k, "train seconds": seconds,
                "output invariance translation": invariance,
                "output invariance rotation": invariance}

    rows = [row("RICA", "RICA", 64, 1.0, 30), row("TICA", "TICA", 64, 2.5, 40),
            row("SC", "sparse coding", 64, 1.9, 10), row("SC4", "sparse coding", 256, 3.0, 20)]
    checks = {check["method"]: check for check in measured_checks(rows)}
    assert [checks[name]["fast"] for name in ("RICA", "TICA", "SC", "SC4")] == [
        True, False, True, None]  # SC4: no RICA at 256 to compare with
    assert [checks[name]["invariant"] for name in ("RICA", "TICA", "SC", "SC4")] == [
        True, True, False, False]
