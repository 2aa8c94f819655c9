"""The flows that the CLI runs and serves, by name: each module holds the flow function
and its declaration, ``PLAN`` (parameter model and stages)."""
from __future__ import annotations

import importlib

#: Flow name -> module holding the flow function of that name and its ``PLAN``.
FLOWS = {name: f"flows.{name}" for name in
         ("quickstart", "histology", "imagenet", "action_recognition", "local_network")}


def load_flow(name: str):
    """(flow function, its ``FlowPlan``), imported on demand."""
    module = importlib.import_module(FLOWS[name])
    return getattr(module, name), module.PLAN
