"""Parameter groups that several flows share."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainingBackend(BaseModel):
    """Where layers train: in the flow's process, or on a Dask cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["local", "dask"] = Field(
        "local", description="local: numpy in this process; dask: shards on a Dask cluster")
    dask_address: str | None = Field(
        None, description="scheduler address (tcp://host:8786) for backend=dask; empty: "
                          "$TERAFEAT_DASK_ADDRESS, else a local cluster of one worker per core")
    solver: Literal["lbfgs", "downpour"] = Field(
        "lbfgs", description="dask only: exact distributed L-BFGS, or Downpour SGD "
                             "(asynchronous, parameter server)")

    def backend_options(self) -> dict:
        """Keyword arguments of ``tasks.training.train_rica_layer``."""
        return {"backend": self.backend, "dask_address": self.dask_address, "solver": self.solver}


class PooledLayerParams(TrainingBackend):
    """Base of the parameters of a flow training one ISA-pooled layer: the flow
    declares ``n_features`` and ``group_size``; groups must tile the features."""

    @model_validator(mode="after")
    def _groups_divide_features(self):
        if self.n_features % self.group_size:
            raise ValueError(f"group_size {self.group_size} must divide n_features {self.n_features}")
        return self


class StageCache(BaseModel):
    """Where a flow's expensive stages cache their outputs (``runs.stage_cache``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cache_root: str | None = Field(
        "data/cache", description="stage cache: a re-run with the same inputs, parameters and "
                                  "code skips the stage (empty: no cache)")
