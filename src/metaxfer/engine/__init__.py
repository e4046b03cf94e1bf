"""The experiment engine: configs, run folders, the one training loop, checkpoints that resume exactly.

A method (see :class:`Method`) supplies networks, optimisers and step functions; the engine does the rest. The usual
entry points are :func:`load_config`, :func:`train` and :func:`resume` (or the ``metaxfer train`` / ``metaxfer
resume`` / ``metaxfer runs list`` commands). ``docs/engine.md`` explains runs, configs, checkpoints and resuming.
"""

from __future__ import annotations

from metaxfer.engine.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from metaxfer.engine.config import (
    ConfigError,
    DataConfig,
    EarlyStopConfig,
    ExperimentConfig,
    TrainConfig,
    config_to_dict,
    config_to_yaml,
    load_config,
    option,
)
from metaxfer.engine.files import OutputError
from metaxfer.engine.loop import NonFiniteLossError, RunResult, Trainer
from metaxfer.engine.methods import METHODS, Method, Step, StepOutput, register_method
from metaxfer.engine.optim import optimizer_for
from metaxfer.engine.runs import Run, RunError, list_runs
from metaxfer.engine.session import resume, train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "EarlyStopConfig",
    "ExperimentConfig",
    "METHODS",
    "Method",
    "NonFiniteLossError",
    "OutputError",
    "Run",
    "RunError",
    "RunResult",
    "Step",
    "StepOutput",
    "TrainConfig",
    "Trainer",
    "config_to_dict",
    "config_to_yaml",
    "latest_checkpoint",
    "list_checkpoints",
    "list_runs",
    "load_checkpoint",
    "load_config",
    "optimizer_for",
    "option",
    "register_method",
    "resume",
    "save_checkpoint",
    "train",
]
