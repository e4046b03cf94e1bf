"""The method plug-in: what a training method gives the engine, and the registry of methods.

A method (a classifier, a meta-learning algorithm, a GAN, ...) is a class registered in :data:`METHODS`. It builds
its networks and optimisers from the experiment config and hands the engine a list of named :class:`Step` functions
to call, in order, once per iteration. The engine (:mod:`metaxfer.engine.loop`) owns everything else: learning-rate
schedules, gradient clipping, mixed precision, NaN checks, evaluation, best-model tracking, early stopping,
checkpoints, progress and logs.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class ToyConfig:
    ...     width: int = 8
    >>> @register_method("toy-example")
    ... class Toy(Method):
    ...     section = "toy"          # the config gains a ``toy:`` section typed by ToyConfig
    ...     Config = ToyConfig
    ...     def __init__(self, cfg, *, device):
    ...         super().__init__(cfg, device=device)
    ...         net = torch.nn.Linear(2, self.method_cfg.width)
    ...         self.modules = {"net": net}
    ...         self.optimizers = {"net": torch.optim.SGD(net.parameters(), lr=cfg.train.lr)}
    ...     def steps(self):
    ...         return [Step("train", self._step, optimizer="net")]
    ...     def _step(self, iteration):
    ...         loss = self.modules["net"](torch.ones(1, 2)).pow(2).mean()
    ...         return StepOutput(loss, {"loss": float(loss)})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from metaxfer.errors import MetaxferError
from metaxfer.registry import Registry

if TYPE_CHECKING:
    from metaxfer.engine.config import ExperimentConfig
    from metaxfer.engine.distributed import Distributed

__all__ = ["Method", "Step", "StepOutput", "METHODS", "register_method", "load_builtin_methods", "RESERVED_SECTIONS"]

#: Top-level config keys every experiment has; a method's own section may not use these names.
RESERVED_SECTIONS = frozenset({"method", "name", "seed", "device", "deterministic", "threads", "data", "train"})


@dataclass
class StepOutput:
    """What a step function returns.

    Attributes:
        loss: A scalar tensor the engine back-propagates and feeds to the step's optimiser (with AMP scaling,
            gradient clipping and a NaN check), or ``None`` when the step updated its parameters itself (e.g. a
            Reptile outer update); then only ``metrics["loss"]``, if present, is checked for NaN.
        metrics: Plain floats to log, e.g. ``{"loss": 0.31, "acc": 0.9}``; the engine prefixes them with the step's
            name (``train/loss``).
        share: With several processes (:mod:`metaxfer.engine.distributed`): this process's share of the global
            batch when the step computed the loss of its slice (``Distributed.shard(n).share``); the engine sums
            ``share × gradient`` (and ``share × metric``) over the processes. ``None``: an equal share each (the
            plain mean over processes). Ignored in a single process.
    """

    loss: torch.Tensor | None
    metrics: dict[str, float] = field(default_factory=dict)
    share: float | None = None


@dataclass(frozen=True)
class Step:
    """One named step function, called once (or ``repeat`` times) per iteration.

    Attributes:
        name: Short name, used as the prefix of its metrics (``"d"`` → ``d/loss``).
        fn: ``fn(iteration) -> StepOutput``; ``iteration`` counts from 0 and is the same for every step of one
            iteration.
        optimizer: Key in ``Method.optimizers`` that the engine steps with the returned loss; ``None`` if the step
            updates its parameters itself and returns ``loss=None``.
        repeat: Calls per iteration (e.g. 5 critic steps per generator step); metrics are averaged over them.
    """

    name: str
    fn: Callable[[int], StepOutput]
    optimizer: str | None = None
    repeat: int = 1


class Method:
    """Base class of every training method.

    Subclasses set the class attributes, build ``modules`` and ``optimizers`` in ``__init__`` and implement
    :meth:`steps`; the rest is optional.

    Class attributes:
        section: Name of the method's own config section (``"meta"`` gives ``meta.inner_lr`` overrides), or ``None``.
        Config: The dataclass typing that section (its fields may use :func:`metaxfer.engine.config.option` for
            choices and ranges).
        headline: ``(metric, mode)``: the metric ``runs list`` shows and that picks the best checkpoint when
            ``train.early_stop.metric`` is empty; ``mode`` is ``"max"`` or ``"min"``.
        sample_columns: Pictures per row in the grid of :meth:`samples`.

    Args:
        cfg: The resolved experiment config.
        device: Where tensors live.

    Attributes:
        cfg: The experiment config.
        method_cfg: The method's own section (an instance of ``Config``), or ``None``.
        device: The device.
        modules: Named ``nn.Module`` s; all of their parameters and buffers are checkpointed.
        optimizers: Named optimisers; the engine attaches the learning-rate schedule to each and checkpoints them.
    """

    section: ClassVar[str | None] = None
    Config: ClassVar[type | None] = None
    headline: ClassVar[tuple[str, str]] = ("eval/loss", "min")
    sample_columns: ClassVar[int] = 8

    def __init__(self, cfg: ExperimentConfig, *, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.method_cfg: Any = getattr(cfg, self.section) if self.section else None
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def dist(self) -> Distributed:
        """The job this process belongs to (one process unless launched by ``torchrun``): a step shards its global
        batch with ``self.dist.shard(n)`` and returns the shard's ``share`` in its :class:`StepOutput`."""
        from metaxfer.engine.distributed import current  # engine.config imports this module: import late

        return current(self.device)

    def steps(self) -> list[Step]:
        """The step functions of one iteration, in the order they run."""
        raise NotImplementedError(f"{type(self).__name__} must implement steps()")

    def finish(self, run_dir: Path) -> None:
        """Called once on rank 0 after training ended normally (not when interrupted), after the last checkpoint,
        ``checkpoints/best.json`` and ``summary.json`` are written: write extra result files into ``run_dir``
        (atomically, e.g. with :func:`metaxfer.engine.files.atomic_write_json`). The default does nothing."""
        return None

    def evaluate(self) -> dict[str, float]:
        """Evaluation metrics (the engine prefixes them with ``eval/``). Modules are in eval mode during the call."""
        return {}

    def samples(self) -> torch.Tensor | None:
        """Pictures to save at each evaluation: uint8 (N, C, H, W), or ``None`` for none."""
        return None

    def generators(self) -> dict[str, torch.Generator]:
        """The method's own ``torch.Generator`` s (data order, noise); their states are checkpointed."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Any other state needed to resume exactly (e.g. the position in an epoch): plain data and tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise MetaxferError(
                f"{type(self).__name__} returned extra state from state_dict() but does not implement load_state_dict()"
            )


METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` subclass under ``name`` after checking its config declaration.

    Raises:
        TypeError: ``section`` and ``Config`` are inconsistent, or ``section`` is a reserved top-level key.
    """

    def add(cls: type[Method]) -> type[Method]:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"method {name!r} must be a subclass of metaxfer.engine.Method")
        if (cls.section is None) != (cls.Config is None):
            raise TypeError(f"method {name!r}: set both `section` and `Config`, or neither")
        if cls.section is not None:
            if cls.section in RESERVED_SECTIONS:
                raise TypeError(
                    f"method {name!r}: section {cls.section!r} clashes with a common config key "
                    f"({', '.join(sorted(RESERVED_SECTIONS))})"
                )
            if not dataclasses.is_dataclass(cls.Config):
                raise TypeError(f"method {name!r}: Config must be a dataclass")
        if cls.headline[1] not in ("max", "min"):
            raise TypeError(f"method {name!r}: headline mode must be 'max' or 'min', got {cls.headline[1]!r}")
        METHODS.register(name, cls)
        return cls

    return add


def load_builtin_methods() -> None:
    """Import the modules that register metaxfer's own methods (imports are cached, so this is cheap)."""
    import metaxfer.methods  # noqa: F401
