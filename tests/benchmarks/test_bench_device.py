"""The ``--device`` option of ``benchmarks/meta_throughput.py`` and ``benchmarks/gan_throughput.py``: how a name
becomes a device (``benchmarks/peers.py``), the clear refusal of ``cuda`` where there is none, and the synchronised
timing helpers on the CPU. Fast: nothing is trained."""

from __future__ import annotations

import pytest
import torch


def test_auto_and_cpu_resolve_without_cuda(load, monkeypatch):
    peers = load("peers")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert peers.resolve_device("auto") == torch.device("cpu")
    assert peers.resolve_device("cpu") == torch.device("cpu")


def test_auto_picks_cuda_when_available(load, monkeypatch):
    peers = load("peers")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert peers.resolve_device("auto") == torch.device("cuda")
    assert peers.resolve_device("cuda") == torch.device("cuda")
    assert peers.resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_cuda_and_unknown_names_are_refused(load, monkeypatch):
    peers = load("peers")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"CUDA is not available.*use --device cpu or auto"):
        peers.resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        peers.resolve_device("tpu")
    assert peers.DEVICE_CHOICES == ("auto", "cpu", "cuda")


@pytest.mark.parametrize("script", ["meta_throughput", "gan_throughput"])
def test_scripts_refuse_cuda_with_a_message_not_a_traceback(load, monkeypatch, capsys, script):
    module = load(script)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        module.main(["--device", "cuda"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "use --device cpu or auto" in err and "Traceback" not in err


def test_cpu_timing_helpers_run(load):
    meta = load("meta_throughput")
    cpu = torch.device("cpu")
    meta.synchronize(cpu)  # nothing to wait for on the CPU
    assert meta.matmul_peak(repeats=1, size=32, device=cpu) > 0
    calls: list[int] = []
    step = meta.Step(lambda episodes: calls.append(len(episodes)), [])
    rates, faults = meta.time_interleaved({"a": step, "b": step}, [[0] * meta.META_BATCH], 2, cpu)
    assert set(rates) == {"a", "b"} and all(r > 0 for r in rates.values()) and set(faults) == {"a", "b"}
    assert calls == [meta.META_BATCH] * 4
    assert "VmHWM" in meta.memory_measure(cpu) and "max_memory_allocated" in meta.memory_measure(torch.device("cuda"))
