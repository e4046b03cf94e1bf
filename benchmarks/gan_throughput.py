"""GAN training speed: metaxfer's engine methods against the same networks trained the usual way.

Two GANs, each timed both ways with interleaved A/B repeats on one device, ``--device`` (``auto``, the default:
CUDA when ``torch.cuda.is_available()``, else the CPU; ``cpu``; ``cuda``), on the CPU on the same pinned threads
(``--threads``):

- ``dcgan-28 b64``: unconditional DCGAN on 1×28×28 images, batch 64, width 64, non-saturating loss
  (``BCEWithLogitsLoss``), Adam(2e-4, β₁ = 0.5). metaxfer: the ``gan`` engine method (steps d, g and the EMA
  update) run by the engine's own iteration (``Trainer._iteration``: zero_grad, backward, NaN check, optimiser step,
  schedules).
- ``cyclegan-32 b8``: CycleGAN on two 3×32×32 domains, batch 8, ResNet-6 translators (width 64, two
  downsamplings), 3-layer PatchGANs, least-squares loss, cycle 10, identity 5, image pools of 50. metaxfer: the
  ``cyclegan`` engine method.

The plain references below are written the way the PyTorch DCGAN example and the CycleGAN reference code are:
``nn.Module`` networks, Adam, ``zero_grad`` / ``backward`` / ``step``. Their architectures are the same as
metaxfer's (the benchmark checks that parameter counts agree). One line per GAN ends with ``ratio: X`` =
metaxfer steps/s ÷ plain steps/s (medians over repeats); > 1 means metaxfer is faster.

Both run on the chosen device with the same data and initial weights on every device: the data and the networks
are made on the CPU and moved there (the plain script's networks before their optimisers exist; metaxfer's engine
moves its own, given ``device`` like ``metaxfer train --device``), and both train in float32 (``train.amp: fp32``,
which is what ``auto`` gives on the CPU; on CUDA ``auto`` would be bfloat16 autocast, which the plain script does
not use). The plain script draws its batch indices and noise on the device. On CUDA every timing starts and ends
with ``torch.cuda.synchronize()``. The header names the device: on the CPU the torch version and ``--threads``; on
CUDA the card's name and the torch and CUDA versions (``--threads`` then only pins the host threads, and is not
printed). ``--device cuda`` where CUDA is not available stops with a message saying so.

    python benchmarks/gan_throughput.py                 # 2 threads, 5 repeats, on CUDA when there is one
    python benchmarks/gan_throughput.py --threads 1 --repeats 3 --only dcgan
    python benchmarks/gan_throughput.py --device cpu    # the CPU even where there is a GPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import DEVICE_CHOICES, device_summary, resolve_device, synchronize


# ---------------------------------------------------------------------------------------------------- plain DCGAN
class PlainDCGANGenerator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 1) -> None:
        super().__init__()
        self.ngf = ngf
        self.fc = nn.Linear(nz, ngf * 2 * 7 * 7, bias=False)
        self.main = nn.Sequential(
            nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(self.fc(z).view(-1, self.ngf * 2, 7, 7))


class PlainDCGANDiscriminator(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 1) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        )
        self.fc = nn.Linear(ndf * 2 * 7 * 7, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.main(x).flatten(1)).view(-1)


def plain_dcgan(data: torch.Tensor, batch: int = 64) -> tuple[Callable[[], None], list[nn.Module]]:
    """One training iteration of the PyTorch DCGAN example's loop (D on real and fake, then G), on ``data``'s device.

    The networks are initialised on the CPU (the same weights on every device) and moved before the optimisers are
    made.
    """
    device = data.device
    netG, netD = PlainDCGANGenerator().to(device), PlainDCGANDiscriminator().to(device)
    criterion = nn.BCEWithLogitsLoss()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step() -> None:
        real = data[torch.randint(len(data), (batch,), device=device)]
        netD.zero_grad()
        out = netD(real)
        errD_real = criterion(out, torch.ones_like(out))
        errD_real.backward()
        fake = netG(torch.randn(batch, 100, device=device))
        out = netD(fake.detach())
        errD_fake = criterion(out, torch.zeros_like(out))
        errD_fake.backward()
        optD.step()
        netG.zero_grad()
        out = netD(fake)
        errG = criterion(out, torch.ones_like(out))
        errG.backward()
        optG.step()
        float((errD_real + errD_fake).detach()), float(errG.detach())  # the example logs the losses every iteration

    return step, [netG, netD]


# ---------------------------------------------------------------------------------------------------- plain CycleGAN
class PlainResnetBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class PlainResnetGenerator(nn.Module):
    def __init__(self, nc: int = 3, ngf: int = 64, n_blocks: int = 6) -> None:
        super().__init__()
        model: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(nc, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1), nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
        model += [PlainResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
                      nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PlainNLayerDiscriminator(nn.Module):
    def __init__(self, nc: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=False),
                    nn.InstanceNorm2d(ndf * mult, affine=True), nn.LeakyReLU(0.2, True)]  # metaxfer: affine
        seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PlainImagePool:
    def __init__(self, size: int = 50) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(1).item() > 0.5:
                i = int(torch.randint(self.size, (1,)))
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)


def plain_cyclegan(data_a: torch.Tensor, data_b: torch.Tensor, batch: int = 8) -> tuple[Callable[[], None], list[nn.Module]]:
    """One iteration of the CycleGAN reference code's loop: G_A and G_B (D frozen), then D_A and D_B.

    On the device of ``data_a`` and ``data_b``; the networks are initialised on the CPU and moved before the
    optimisers are made.
    """
    device = data_a.device
    netG_A, netG_B = PlainResnetGenerator().to(device), PlainResnetGenerator().to(device)
    netD_A, netD_B = PlainNLayerDiscriminator().to(device), PlainNLayerDiscriminator().to(device)
    optG = torch.optim.Adam(list(netG_A.parameters()) + list(netG_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(list(netD_A.parameters()) + list(netD_B.parameters()), lr=2e-4, betas=(0.5, 0.999))
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    pool_a, pool_b = PlainImagePool(), PlainImagePool()

    def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def step() -> None:
        real_A = data_a[torch.randint(len(data_a), (batch,), device=device)]
        real_B = data_b[torch.randint(len(data_b), (batch,), device=device)]
        fake_B = netG_A(real_A)
        rec_A = netG_B(fake_B)
        fake_A = netG_B(real_B)
        rec_B = netG_A(fake_A)
        set_requires_grad([netD_A, netD_B], False)
        optG.zero_grad()
        idt_A = netG_A(real_B)
        idt_B = netG_B(real_A)
        pred_a, pred_b = netD_A(fake_B), netD_B(fake_A)
        loss_G = (mse(pred_a, torch.ones_like(pred_a)) + mse(pred_b, torch.ones_like(pred_b))
                  + 10 * (l1(rec_A, real_A) + l1(rec_B, real_B)) + 5 * (l1(idt_A, real_B) + l1(idt_B, real_A)))
        loss_G.backward()
        optG.step()
        set_requires_grad([netD_A, netD_B], True)
        optD.zero_grad()
        losses = []
        for netD, real, fake in ((netD_A, real_B, pool_b.query(fake_B)), (netD_B, real_A, pool_a.query(fake_A))):
            pr, pf = netD(real), netD(fake.detach())
            loss_D = 0.5 * (mse(pr, torch.ones_like(pr)) + mse(pf, torch.zeros_like(pf)))
            loss_D.backward()
            losses.append(loss_D)
        optD.step()
        float(loss_G.detach()), [float(v.detach()) for v in losses]

    return step, [netG_A, netD_A]


# ---------------------------------------------------------------------------------------------------- metaxfer
def metaxfer_step(
    cfg_dict: dict, workdir: str, device: torch.device | None = None
) -> tuple[Callable[[], None], list[nn.Module]]:
    """One engine iteration of a metaxfer method (the code path `metaxfer train` runs) on ``device`` (default: CPU)."""
    from metaxfer.engine import load_config
    from metaxfer.engine.loop import Trainer
    from metaxfer.engine.runs import Run

    device = torch.device("cpu") if device is None else device
    cfg = load_config({**cfg_dict, "device": device.type})
    run = Run.create(name=cfg.name or cfg.method, out=workdir)
    trainer = Trainer(cfg, run, device=device, progress_bar=False)
    counter = [0]

    def step() -> None:
        trainer._iteration(counter[0])  # the engine's own iteration: steps, backward, checks, optimisers, schedules
        counter[0] += 1

    mods = trainer.method.modules
    nets = [mods["g"], mods["d"]] if "g" in mods else [mods["cyclegan"].g_ab, mods["cyclegan"].d_a]
    return step, nets


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _dcgan_cfg() -> dict:
    return {"method": "gan", "device": "cpu", "seed": 0,
            "data": {"domain": "synthetic", "options": {"num_classes": 10, "per_class": 64, "size": 28}, "batch_size": 64},
            "train": {"steps": 100000, "lr": 2e-4, "tensorboard": False, "amp": "fp32"},
            "gan": {"conditional": False, "latent_dim": 100, "width": 64, "d_width": 64, "objective": "nonsaturating"}}


def _cyclegan_cfg() -> dict:
    return {"method": "cyclegan", "device": "cpu", "seed": 0,
            "data": {"domain": "synthetic", "options": {"num_classes": 4, "per_class": 16, "size": 32, "channels": 3},
                     "batch_size": 8},
            "train": {"steps": 100000, "lr": 2e-4, "tensorboard": False, "amp": "fp32"},
            "cyclegan": {"target": "synthetic", "target_options": {"num_classes": 4, "per_class": 16, "size": 32,
                                                                   "channels": 3, "seed": 1},
                         "width": 64, "blocks": 6, "downsamplings": 2, "d_width": 64, "d_layers": 3,
                         "identity_weight": 5.0, "pool_size": 50}}


def _time(step: Callable[[], None], n: int, device: torch.device | None = None) -> float:
    """Steps per second of ``n`` calls of ``step`` (synchronised with ``device`` at both ends on CUDA)."""
    if device is not None:
        synchronize(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    if device is not None:
        synchronize(device)
    return n / (time.perf_counter() - t0)


def bench(
    name: str,
    ours: Callable[[], None],
    plain: Callable[[], None],
    *,
    steps: int,
    repeats: int,
    device: torch.device | None = None,
) -> str:
    for fn in (ours, plain):  # warm-up
        fn()
    a, b = [], []
    for r in range(repeats):
        first, second = ((ours, a), (plain, b)) if r % 2 == 0 else ((plain, b), (ours, a))  # interleaved A/B, B/A
        for fn, acc in (first, second):
            acc.append(_time(fn, steps, device))
    ma, mb = statistics.median(a), statistics.median(b)
    return (f"{name}: metaxfer {ma:.2f} steps/s (best {max(a):.2f}), plain {mb:.2f} steps/s (best {max(b):.2f}), "
            f"ratio: {ma / mb:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="where both implementations run (auto: cuda when available, else cpu; default auto)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (pinned; matter on the CPU; default 2)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("dcgan", "cyclegan"), default=None)
    parser.add_argument("--dcgan-steps", type=int, default=10, help="DCGAN iterations per timing")
    parser.add_argument("--cyclegan-steps", type=int, default=2, help="CycleGAN iterations per timing")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))  # exits with the message, no traceback
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    where = f"{args.threads} threads" if device.type == "cpu" else device_summary(device)
    print(f"torch {torch.__version__}, {where}, {args.repeats} interleaved repeats; "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "dcgan"):
            ours, (g, d) = metaxfer_step(_dcgan_cfg(), f"{tmp}/dcgan", device)
            data = (torch.rand(640, 1, 28, 28) * 2 - 1).to(device)
            plain, (pg, pd) = plain_dcgan(data)
            assert (_count(g), _count(d)) == (_count(pg), _count(pd)), "DCGAN architectures differ"
            print(bench("dcgan-28 b64", ours, plain, steps=args.dcgan_steps, repeats=args.repeats, device=device) +
                  f" [G {_count(g) / 1e6:.2f} M, D {_count(d) / 1e6:.2f} M parameters]", flush=True)
        if args.only in (None, "cyclegan"):
            ours, (g, d) = metaxfer_step(_cyclegan_cfg(), f"{tmp}/cyclegan", device)
            da, db = torch.rand(64, 3, 32, 32) * 2 - 1, torch.rand(64, 3, 32, 32) * 2 - 1
            plain, (pg, pd) = plain_cyclegan(da.to(device), db.to(device))
            assert (_count(g), _count(d)) == (_count(pg), _count(pd)), "CycleGAN architectures differ"
            print(bench("cyclegan-32 b8", ours, plain, steps=args.cyclegan_steps, repeats=args.repeats, device=device) +
                  f" [each G {_count(g) / 1e6:.2f} M, each D {_count(d) / 1e6:.2f} M parameters]", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
