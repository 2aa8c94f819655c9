"""The flows that the CLI runs and serves, by name, with their parameter models."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlowEntry:
    name: str
    module: str
    function: str
    params: str

    def load(self):
        """(flow function, parameter model class), imported on demand."""
        import importlib
        module = importlib.import_module(self.module)
        return getattr(module, self.function), getattr(module, self.params)


FLOWS = {entry.name: entry for entry in [
    FlowEntry("quickstart", "flows.quickstart", "quickstart", "QuickstartParams"),
    FlowEntry("histology", "flows.histology", "histology", "HistologyParams"),
    FlowEntry("imagenet", "flows.imagenet", "imagenet", "ImagenetParams"),
    FlowEntry("action_recognition", "flows.action_recognition", "action_recognition",
              "ActionRecognitionParams"),
    FlowEntry("face_neuron", "flows.face_neuron", "face_neuron", "FaceNeuronParams"),
    FlowEntry("local_network", "flows.local_network", "local_network", "LocalNetworkParams"),
]}
