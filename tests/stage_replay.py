"""What every flow's tests check of ``terafeat task``: each stage of a finished run,
replayed alone from the flow's declaration, writes the same files and returns the same
numbers as in the run."""
from __future__ import annotations

import json
from pathlib import Path

from flows.stages import FlowPlan, relocated, replay_stage
from terafeat.atomic_files import load_json

#: Keys of a stage's result that measure the machine (time, memory), not the science.
MEASURED = ("seconds", "peak_rss", "images_per_second", "frames_per_second", "throughput")


def _science(value):
    if isinstance(value, dict):
        return {key: _science(item) for key, item in value.items()
                if not any(word in key for word in MEASURED)}
    if isinstance(value, (list, tuple)):
        return [_science(item) for item in value]
    return value


def assert_stages_replay(plan: FlowPlan, run: Path, output_root: Path) -> list[str]:
    """Replay every stage that ran in ``run``; each file it writes must equal, byte for
    byte, the run's file of the same name, and its result the run's (paths moved, times
    left out).  Returns the names of the stages replayed."""
    results = load_json(run / "results.json")
    replayed = []
    for stage in plan.stages:
        if results.get(stage.key) is None:
            continue
        replay = replay_stage(plan, stage.name, run, {}, output_root)
        out, result = replay.folder, replay.result
        written = [path for path in out.rglob("*") if path.is_file()]
        assert written or result, f"{stage.name} wrote and returned nothing"
        for path in written:
            original = run / path.relative_to(out)
            assert original.is_file(), f"{stage.name}: {original} is not in the run"
            assert path.read_bytes() == original.read_bytes(), \
                f"{stage.name}: {path.relative_to(out)} differs from the run's"
        result = json.loads(json.dumps(result, default=str))
        assert _science(relocated(result, str(out), str(run.resolve()))) == _science(
            relocated(results[stage.key], results["run_dir"], str(run.resolve()))), stage.name
        replayed.append(stage.name)
    return replayed
