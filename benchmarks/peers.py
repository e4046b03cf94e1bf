"""The peers that ``benchmarks/meta_throughput.py`` measures metaxfer against, and their meta-training steps.

Peers (installed for the benchmark only, by ``scripts/install-bench-peers.sh``):

* **learn2learn 0.2.0** — only ``learn2learn/algorithms/maml.py``, ``base_learner.py`` and ``utils/__init__.py``
  are loaded, from the unpacked sdist in ``.venv/peers/``: empty package modules for ``learn2learn`` and
  ``learn2learn.algorithms`` are registered in ``sys.modules`` with ``__path__`` pointing into the unpacked folder,
  so the package ``__init__`` (which imports torchvision and gym, and Cython code that does not build on
  Python 3.11) never runs.
* **higher 0.2.1** — ``higher.innerloop_ctx``.
* **a plain loop** — hand-written functional Conv-4 and ``torch.autograd.grad``.

Every peer runs the same Conv-4 as metaxfer (4 × [3×3 conv with 64 filters, batch norm, ReLU, 2×2 max-pool], a
linear head), with the same initial weights, and batch norm that takes the statistics of each forward pass (support
and query are forwarded separately: metaxfer's ``"transductive"`` mode, the MAML paper's behaviour).

A *step* is one outer update over a meta-batch: ``step(episodes)`` takes a list of uint8 episodes (converted to
float / 255 here, as metaxfer does), back-propagates the mean query loss task by task (the frameworks' usual
way: only one task's graph alive at a time) and takes an Adam step.

Device: :func:`peer_steps` builds every peer's network on the CPU (same initial weights as metaxfer's backbone), then
moves it to ``device`` before its optimiser exists, so the parameters, their gradients and the Adam state all live
there; the episodes are expected on that device too (``Episode.to``). The helpers at the end
(:func:`resolve_device`, :func:`synchronize`, :func:`device_summary`) are shared by both throughput benchmarks.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_ROOT",
    "DEVICE_CHOICES",
    "L2L_VERSION",
    "PeerConv4",
    "Peers",
    "Step",
    "device_summary",
    "load_learn2learn_maml",
    "load_peers",
    "peer_steps",
    "resolve_device",
    "synchronize",
]

L2L_VERSION = "0.2.0"
#: Where ``scripts/install-bench-peers.sh`` unpacks the learn2learn sdist.
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".venv" / "peers"
#: The values of the benchmarks' ``--device`` option.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass
class Step:
    """One implementation's outer update.

    Attributes:
        run: ``run(episodes)`` does one outer update over a meta-batch of uint8 episodes.
        params: The meta-parameters in metaxfer ``Conv4`` order (their ``.grad`` holds the last meta-gradient).
    """

    run: Callable[[Sequence[Any]], None]
    params: list[torch.Tensor]

    def __call__(self, episodes: Sequence[Any]) -> None:
        self.run(episodes)


# --------------------------------------------------------------------------------------------------- loading
def load_learn2learn_maml(root: Path | str = DEFAULT_ROOT) -> type[nn.Module]:
    """Load ``learn2learn.algorithms.MAML`` from the unpacked sdist without running the package ``__init__``.

    Args:
        root: Folder holding ``learn2learn-0.2.0/`` (unpacked by ``scripts/install-bench-peers.sh``).

    Returns:
        The ``MAML`` class.

    Raises:
        FileNotFoundError: The sdist is not unpacked there (the message says how to install it).
    """
    src = Path(root) / f"learn2learn-{L2L_VERSION}" / "learn2learn"
    if not (src / "algorithms" / "maml.py").is_file():
        raise FileNotFoundError(
            f"learn2learn {L2L_VERSION} sources not found under {src}: run `bash scripts/install-bench-peers.sh`"
        )
    loaded = sys.modules.get("learn2learn.algorithms.maml")
    if loaded is not None:
        return loaded.MAML
    for name, folder in (("learn2learn", src), ("learn2learn.algorithms", src / "algorithms")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]  # submodules are found here; the real __init__ never runs
            package.__version__ = L2L_VERSION
            sys.modules[name] = package
    return importlib.import_module("learn2learn.algorithms.maml").MAML


@dataclass
class Peers:
    """The loaded peer frameworks.

    Attributes:
        l2l_maml: ``learn2learn.algorithms.MAML``.
        higher: The ``higher`` module.
        versions: Framework name to version string.
    """

    l2l_maml: type[nn.Module]
    higher: types.ModuleType
    versions: dict[str, str] = field(default_factory=dict)


def load_peers(root: Path | str = DEFAULT_ROOT) -> Peers:
    """Load learn2learn's MAML and higher.

    Raises:
        ModuleNotFoundError / FileNotFoundError: A peer is not installed (the message says how to install it).
    """
    try:
        higher = importlib.import_module("higher")
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "higher is not installed: run `bash scripts/install-bench-peers.sh` (pip install --no-deps higher==0.2.1)"
        ) from exc
    maml = load_learn2learn_maml(root)
    from importlib.metadata import version

    return Peers(maml, higher, {"learn2learn": L2L_VERSION, "higher": version("higher"), "torch": torch.__version__})


# --------------------------------------------------------------------------------------------------- network
class PeerConv4(nn.Module):
    """Conv-4 as the peers write it: ``nn.Sequential`` blocks with ``nn.BatchNorm2d`` on batch statistics.

    Args:
        in_channels: Image channels.
        hidden: Filters per block.
        ways: Head outputs.
        features: Feature size after the body (``hidden`` on 28×28 images).
    """

    def __init__(self, *, in_channels: int = 1, hidden: int = 64, ways: int = 5, features: int = 64) -> None:
        super().__init__()
        blocks = []
        for c_in in (in_channels, hidden, hidden, hidden):
            blocks += [
                nn.Conv2d(c_in, hidden, 3, padding=1),
                nn.BatchNorm2d(hidden, track_running_stats=False),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
        self.body = nn.Sequential(*blocks, nn.Flatten())
        self.head = nn.Linear(features, ways)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def copy_from(self, backbone: nn.Module) -> PeerConv4:
        """Take the weights of a metaxfer ``Conv4`` (same parameter order: conv w, b, bn γ, β per block, head)."""
        with torch.no_grad():
            for mine, theirs in zip(self.parameters(), backbone.parameters(), strict=True):
                mine.copy_(theirs)
        return self


def plain_forward(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The same Conv-4 written as a function of ``[w, b, γ, β] × 4 + [W, b]`` (the plain-loop peer)."""
    for i in range(4):
        w, b, gamma, beta = params[4 * i : 4 * i + 4]
        x = F.conv2d(x, w, b, padding=1)
        x = F.max_pool2d(F.relu(F.batch_norm(x, None, None, gamma, beta, True)), 2)
    return F.linear(x.flatten(1), params[16], params[17])


def _images(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


# --------------------------------------------------------------------------------------------------- steps
def _l2l_maml(peers: Peers, net: PeerConv4, *, lr: float, steps: int, first_order: bool) -> Step:
    maml = peers.l2l_maml(net, lr=lr, first_order=first_order)
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:
            learner = maml.clone()
            sx, qx = _images(e.support_x), _images(e.query_x)
            for _ in range(steps):
                learner.adapt(F.cross_entropy(learner(sx), e.support_y))
            (F.cross_entropy(learner(qx), e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.parameters()))


def _higher_maml(peers: Peers, net: PeerConv4, *, lr: float, steps: int, first_order: bool) -> Step:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    inner = torch.optim.SGD(net.parameters(), lr=lr)
    # First order in higher: the inner gradients are detached (the usual grad_callback recipe).
    callback = (lambda grads: [g.detach() for g in grads]) if first_order else None

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:
            sx, qx = _images(e.support_x), _images(e.query_x)
            with peers.higher.innerloop_ctx(net, inner, copy_initial_weights=False) as (fnet, diffopt):
                for _ in range(steps):
                    diffopt.step(F.cross_entropy(fnet(sx), e.support_y), grad_callback=callback)
                (F.cross_entropy(fnet(qx), e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.parameters()))


def _plain_maml(net: PeerConv4, *, lr: float, steps: int, first_order: bool) -> Step:
    theta = list(net.parameters())
    opt = torch.optim.Adam(theta, lr=1e-3)

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:
            sx, qx = _images(e.support_x), _images(e.query_x)
            params = theta
            for _ in range(steps):
                loss = F.cross_entropy(plain_forward(params, sx), e.support_y)
                grads = torch.autograd.grad(loss, params, create_graph=not first_order)
                params = [p - lr * g for p, g in zip(params, grads)]
            (F.cross_entropy(plain_forward(params, qx), e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.parameters()))


def _l2l_anil(peers: Peers, net: PeerConv4, *, lr: float, steps: int, first_order: bool) -> Step:
    head = peers.l2l_maml(net.head, lr=lr, first_order=first_order)
    opt = torch.optim.Adam(list(net.body.parameters()) + list(head.parameters()), lr=1e-3)

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:
            fs, fq = net.body(_images(e.support_x)), net.body(_images(e.query_x))
            learner = head.clone()
            for _ in range(steps):
                learner.adapt(F.cross_entropy(learner(fs), e.support_y))
            (F.cross_entropy(learner(fq), e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.parameters()))


def _higher_anil(peers: Peers, net: PeerConv4, *, lr: float, steps: int, first_order: bool) -> Step:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    inner = torch.optim.SGD(net.head.parameters(), lr=lr)
    callback = (lambda grads: [g.detach() for g in grads]) if first_order else None

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:
            fs, fq = net.body(_images(e.support_x)), net.body(_images(e.query_x))
            with peers.higher.innerloop_ctx(net.head, inner, copy_initial_weights=False) as (fhead, diffopt):
                for _ in range(steps):
                    diffopt.step(F.cross_entropy(fhead(fs), e.support_y), grad_callback=callback)
                (F.cross_entropy(fhead(fq), e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.parameters()))


def _plain_anil(net: PeerConv4, *, lr: float, steps: int, first_order: bool) -> Step:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    w0, b0 = net.head.weight, net.head.bias

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:
            fs, fq = net.body(_images(e.support_x)), net.body(_images(e.query_x))
            w, b = w0, b0
            for _ in range(steps):
                loss = F.cross_entropy(F.linear(fs, w, b), e.support_y)
                gw, gb = torch.autograd.grad(loss, (w, b), create_graph=not first_order)
                w, b = w - lr * gw, b - lr * gb
            (F.cross_entropy(F.linear(fq, w, b), e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.parameters()))


def _plain_protonet(net: PeerConv4, *, ways: int) -> Step:
    opt = torch.optim.Adam(net.body.parameters(), lr=1e-3)

    def step(episodes: Sequence[Any]) -> None:
        opt.zero_grad()
        for e in episodes:  # learn2learn's ProtoNet example: one task at a time, plain PyTorch
            fs, fq = net.body(_images(e.support_x)), net.body(_images(e.query_x))
            protos = torch.stack([fs[e.support_y == c].mean(0) for c in range(ways)])
            logits = -(fq.unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(-1)
            (F.cross_entropy(logits, e.query_y) / len(episodes)).backward()
        opt.step()

    return Step(step, list(net.body.parameters()))


def peer_steps(
    algorithm: str,
    *,
    peers: Peers | None,
    backbone: nn.Module,
    ways: int,
    lr: float,
    steps: int,
    names: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Step]:
    """Build the peers' meta-training steps for one algorithm.

    Args:
        algorithm: ``"maml-so"``, ``"maml-fo"``, ``"anil"`` (second order, head only) or ``"protonet"``.
        peers: Loaded frameworks (``None`` allows only ``"plain"``).
        backbone: A metaxfer ``Conv4`` (with head, except for ProtoNets) whose weights every peer copies.
        ways: N.
        lr: Inner learning rate.
        steps: Inner steps.
        names: Which peers to build (default: all that apply).
        device: Where the peers' networks (and so their gradients and optimiser state) live; the episodes given to
            the steps must be there too.

    Returns:
        Peer name (``"learn2learn"``, ``"higher"``, ``"plain"``) to step function.
    """
    def net() -> PeerConv4:
        # Built on the CPU (the same draws from the global generator on every device), given metaxfer's weights,
        # then moved: every builder creates its optimisers after this, over the parameters on ``device``.
        fresh = PeerConv4(ways=ways)
        if algorithm == "protonet":
            fresh.head = nn.Identity()
            with torch.no_grad():
                for mine, theirs in zip(fresh.body.parameters(), backbone.parameters(), strict=True):
                    mine.copy_(theirs)
            return fresh.to(device)
        return fresh.copy_from(backbone).to(device)

    fo = algorithm == "maml-fo"
    if algorithm == "protonet":
        builders: dict[str, Callable[[], Step]] = {"plain": lambda: _plain_protonet(net(), ways=ways)}
    elif algorithm in ("maml-so", "maml-fo"):
        builders = {
            "learn2learn": lambda: _l2l_maml(peers, net(), lr=lr, steps=steps, first_order=fo),
            "higher": lambda: _higher_maml(peers, net(), lr=lr, steps=steps, first_order=fo),
            "plain": lambda: _plain_maml(net(), lr=lr, steps=steps, first_order=fo),
        }
    elif algorithm == "anil":
        builders = {
            "learn2learn": lambda: _l2l_anil(peers, net(), lr=lr, steps=steps, first_order=False),
            "higher": lambda: _higher_anil(peers, net(), lr=lr, steps=steps, first_order=False),
            "plain": lambda: _plain_anil(net(), lr=lr, steps=steps, first_order=False),
        }
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}: use maml-so, maml-fo, anil or protonet")
    wanted = list(builders) if names is None else list(names)
    unknown = sorted(set(wanted) - set(builders))
    if unknown:
        raise ValueError(f"no peer {unknown} for {algorithm}; choose from {sorted(builders)}")
    if peers is None and any(n != "plain" for n in wanted):
        raise ValueError("learn2learn and higher are not loaded: run `bash scripts/install-bench-peers.sh`")
    return {n: builders[n]() for n in wanted}


# --------------------------------------------------------------------------------------------------- device
def resolve_device(name: str) -> torch.device:
    """The device of a benchmark's ``--device`` option.

    Args:
        name: ``"auto"`` (CUDA when ``torch.cuda.is_available()``, else the CPU), ``"cpu"`` or ``"cuda"``.

    Returns:
        The device.

    Raises:
        ValueError: ``"cuda"`` is asked for but CUDA is not available, or ``name`` is not one of
            :data:`DEVICE_CHOICES` (the message says what to use instead).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", built without CUDA")
            raise ValueError(f"CUDA is not available here ({build}): use --device cpu or auto")
        return torch.device("cuda")
    raise ValueError(f"unknown device {name!r}: use one of {', '.join(DEVICE_CHOICES)}")


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing to do on the CPU.

    Called before reading the clock at the start and at the end of every timed region, so that a timing covers the
    work launched inside it and none launched before it.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_summary(device: torch.device) -> str:
    """``"<card name>, CUDA <version>"`` for a CUDA device (for a benchmark's header line)."""
    return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
