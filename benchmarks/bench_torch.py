#!/usr/bin/env python
"""gradsight (PyTorch) against a bare-autograd floor, Captum and pytorch-grad-cam.

Every number in the table is a ratio of medians measured in this one run, with the
implementations of a group interleaved in the same loop (one warm-up call each, then
``repeats`` rounds, the order shuffled every round, seeded by the round). See ``benchmarks/README.md``.

    python benchmarks/bench_torch.py            # full run (the lead's quiet machine)
    python benchmarks/bench_torch.py --quick    # tiny sizes, 1 repeat: checks the script

Prints one markdown report and writes it to ``benchmarks/results/torch_<host>.md``
(``torch_<host>-quick.md`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import random
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cam_family import TARGETS as CAM_FAMILY_TARGETS  # noqa: E402
from cam_family import torch_rows as cam_family_rows  # noqa: E402
from models import cifar_resnet, resnet50  # noqa: E402

import gradsight as gs  # noqa: E402

# The targets (gradsight / floor).
TARGETS = {"saliency": 1.10, "gradcam": 1.10, "smoothgrad": 1.10, "deconvnet": 1.15, "guided_backprop": 1.15}
TARGETS.update(CAM_FAMILY_TARGETS)  # issue 15: the CAM family, IG, input x gradient, SmoothGrad's layout
QUICK = False
CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process; with --threads 1 a
# loaded machine's waits drop out of it; not what a user waits for, use it only when the machine is busy)
NOISE = 0.15  # smoothgrad noise level, as a fraction of each input's value range


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """One model and the sizes used with it."""

    key: str
    label: str
    shape: tuple[int, int, int, int]  # the explained batch
    layer: str  # Grad-CAM layer: the last conv stage
    sg_images: int  # smoothgrad explains x[:sg_images] ...
    sg_samples: int  # ... with this many noisy copies ...
    sg_batch: int  # ... in passes of at most this many rows
    repeats: int
    classes: int = 10

    def build(self) -> nn.Module:
        if self.key == "resnet50":
            return resnet50(self.classes)
        return cifar_resnet(functional=self.key == "cifar-functional", num_classes=self.classes)


def settings(quick: bool, repeats: int | None) -> list[Setting]:
    if quick:
        r = repeats or 1
        return [
            Setting("resnet50", "ResNet-50 (tiny input)", (2, 3, 64, 64), "layer4", 2, 4, 4, r, 1000),
            Setting("cifar-module", "CIFAR ResNet-20, nn.ReLU", (8, 3, 32, 32), "layer3", 8, 4, 16, r),
            Setting("cifar-functional", "CIFAR ResNet-20, F.relu", (8, 3, 32, 32), "layer3", 8, 4, 16, r),
        ]
    # Sizes chosen so that the whole run takes under 10 minutes on 2 cores. SmoothGrad on
    # ResNet-50 explains 2 of the 8 images (8 samples, batch_size=8: 2 passes of 8 rows),
    # because its cost is samples x images full passes; the ratio to the floor does not
    # depend on the number of images.
    return [
        Setting("resnet50", "ResNet-50", (8, 3, 224, 224), "layer4", 2, 8, 8, repeats or 5, 1000),
        Setting("cifar-module", "CIFAR ResNet-20, nn.ReLU", (64, 3, 32, 32), "layer3", 64, 8, 128, repeats or 25),
        Setting("cifar-functional", "CIFAR ResNet-20, F.relu", (64, 3, 32, 32), "layer3", 64, 8, 128, repeats or 25),
    ]


@dataclass(frozen=True)
class MemorySetting:
    images: int
    batch_size: int
    samples: tuple[int, int] = (16, 128)


def memory_setting(quick: bool) -> MemorySetting:
    return MemorySetting(2, 16) if quick else MemorySetting(8, 64)


def make_input(s: Setting) -> tuple[torch.Tensor, list[int]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(s.shape, generator=g)
    # An explicit class per sample, so that no implementation resolves a top-1 of its own.
    target = [(7 * i + 3) % s.classes for i in range(s.shape[0])]
    return x, target


# --------------------------------------------------------------------------- floors
# Bare autograd doing the same maths as each method, and nothing else.


def floor_gradient(model: nn.Module, x: torch.Tensor, target: list[int]) -> np.ndarray:
    """Plain gradient of the target scores w.r.t. the input (saliency; deconvnet/guided's floor)."""
    idx = torch.tensor(target)[:, None]
    xin = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xin).gather(1, idx).sum(), xin)
    return g.numpy()


def _forward_capturing(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    store: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda m, i, o: store.append(o))
    try:
        out = model(x)
    finally:
        handle.remove()
    return out, store[-1]


def _cam(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    return torch.relu((G.mean((2, 3), keepdim=True) * A).sum(1))


def floor_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: list[int]) -> np.ndarray:
    """Hook the layer, gradient w.r.t. its output only, mean-pool, weighted sum, ReLU."""
    out, A = _forward_capturing(model, layer, x)
    (G,) = torch.autograd.grad(out.gather(1, torch.tensor(target)[:, None]).sum(), A)
    return _cam(A, G).detach().numpy()


def floor_guided_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: list[int]) -> np.ndarray:
    """One forward, one backward to (input, layer) with the plain gradient, CAM upsampled x gradient."""
    xin = x.detach().requires_grad_(True)
    out, A = _forward_capturing(model, layer, xin)
    gx, G = torch.autograd.grad(out.gather(1, torch.tensor(target)[:, None]).sum(), (xin, A))
    up = F.interpolate(_cam(A.detach(), G)[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)
    return (gx * up).numpy()


def floor_smoothgrad(
    model: nn.Module, x: torch.Tensor, target: list[int], samples: int, batch_size: int, seed: int = 0
) -> np.ndarray:
    """The same noise loop as gradsight: ``batch_size // n`` noisy copies of the batch per pass."""
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    flat = x.reshape(n, -1)
    sigma = (NOISE * (flat.amax(1) - flat.amin(1))).view(n, *([1] * (x.dim() - 1)))
    per_pass = max(1, batch_size // n)
    idx = torch.tensor(target)
    total = torch.zeros_like(x)
    for s0 in range(0, samples, per_pass):
        k = min(per_pass, samples - s0)
        noise = torch.randn((k, *x.shape), generator=gen) * sigma
        rows = (x.unsqueeze(0) + noise).reshape(k * n, *x.shape[1:]).requires_grad_(True)
        score = model(rows).gather(1, idx.repeat(k)[:, None]).sum()
        (g,) = torch.autograd.grad(score, rows)
        total += g.reshape(k, *x.shape).sum(0)
    return (total / samples).numpy()


# --------------------------------------------------------------------------- peers


def captum_available() -> bool:
    return importlib.util.find_spec("captum") is not None


def gradcam_lib_status() -> tuple[bool, str]:
    """Whether pytorch-grad-cam can be timed here, and why not."""
    if importlib.util.find_spec("pytorch_grad_cam") is None:
        why = "not installed"
        if importlib.util.find_spec("torchvision") is None:
            why = (
                "not measurable here: pytorch-grad-cam (grad-cam 1.5.7 on PyPI) imports torchvision when the "
                "package is imported (pytorch_grad_cam/utils/image.py: `from torchvision.transforms import ...`; "
                "utils/model_targets.py: `import torchvision`), and this environment has no CPU torchvision build"
            )
        return False, why
    try:
        import pytorch_grad_cam  # noqa: F401
    except Exception as exc:  # report why, do not fail the benchmark
        return False, f"not measurable here: `import pytorch_grad_cam` fails with {type(exc).__name__}: {exc}"
    return True, "measured"


# --------------------------------------------------------------------------- timing


@dataclass
class Group:
    """Callables timed together, interleaved in one loop."""

    name: str
    fns: dict[str, Callable[[], Any]]
    times: dict[str, list[float]] = field(default_factory=dict)

    def run(self, repeats: int) -> None:
        names = list(self.fns)
        for name in names:  # warm-up: first-call costs (imports, kernel selection)
            self.fns[name]()
        self.times = {name: [] for name in names}
        gc.collect()  # once, not before every call: see bench_keras.interleaved (a forced full collection cools the caches)
        for r in range(repeats):
            order = random.Random(r).sample(names, len(names))  # seeded shuffle: see bench_keras.interleaved
            for name in order:
                t0 = CLOCK()
                self.fns[name]()
                self.times[name].append(CLOCK() - t0)

    def median(self, name: str) -> float | None:
        t = self.times.get(name)
        return statistics.median(t) if t else None


@dataclass
class Row:
    setting: Setting
    method: str
    group: Group
    gs: str
    floor: str
    floor_kind: str
    captum: str | None = None
    captum_note: str = ""
    gradcam_lib: str | None = None
    check: str = ""


def rel_diff(a: Any, b: Any) -> float:
    a = np.asarray(a.detach() if hasattr(a, "detach") else a, dtype=np.float64)
    b = np.asarray(b.detach() if hasattr(b, "detach") else b, dtype=np.float64).reshape(a.shape)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def build_rows(
    s: Setting, with_captum: bool, with_gradcam_lib: bool, cam_family_only: bool = False
) -> tuple[list[Row], list[Group], dict[str, Any]]:
    model = s.build()
    x, t = make_input(s)
    layer = dict(model.named_modules())[s.layer]
    if cam_family_only:  # issue 15's rows only (a shorter run)
        more_rows, more_groups = cam_family_rows(s, model, x, t, layer, floor_gradcam, Group, Row, QUICK)
        return more_rows, more_groups, {}
    xs, ts = x[: s.sg_images].contiguous(), t[: s.sg_images]
    sg_opts = {"samples": s.sg_samples, "batch_size": s.sg_batch, "noise": NOISE, "seed": 0}

    def explain(method: str, **kw: Any) -> Callable[[], Any]:
        return lambda: gs.explain(model, x, method=method, target=t, **kw)

    grads = Group("input gradients", {
        "gs saliency": explain("saliency"),
        "gs deconvnet": explain("deconvnet"),
        "gs guided_backprop": explain("guided_backprop"),
        "floor gradient": lambda: floor_gradient(model, x, t),
    })
    cam = Group("gradcam", {
        "gs gradcam": explain("gradcam", layer=s.layer),
        "floor gradcam": lambda: floor_gradcam(model, layer, x, t),
    })
    ggc = Group("guided_gradcam", {
        "gs guided_gradcam": explain("guided_gradcam", layer=s.layer),
        "floor guided_gradcam": lambda: floor_guided_gradcam(model, layer, x, t),
    })
    sg = Group("smoothgrad", {
        "gs smoothgrad": lambda: gs.explain(model, xs, method="smoothgrad", target=ts, **sg_opts),
        "floor smoothgrad": lambda: floor_smoothgrad(model, xs, ts, s.sg_samples, s.sg_batch),
    })
    facts: dict[str, Any] = {}
    if with_captum:
        from captum.attr import (
            Deconvolution,
            GuidedBackprop,
            GuidedGradCam,
            LayerGradCam,
            NoiseTunnel,
            Saliency,
        )

        sal, gbp, dec = Saliency(model), GuidedBackprop(model), Deconvolution(model)
        lgc, cggc, nt = LayerGradCam(model, layer), GuidedGradCam(model, layer), NoiseTunnel(Saliency(model))
        sigma = float(NOISE * (xs.max() - xs.min()))  # Captum takes one absolute stdev
        grads.fns["captum Saliency"] = lambda: sal.attribute(x, target=t, abs=False)
        grads.fns["captum Deconvolution"] = lambda: dec.attribute(x, target=t)
        grads.fns["captum GuidedBackprop"] = lambda: gbp.attribute(x, target=t)
        cam.fns["captum LayerGradCam"] = lambda: lgc.attribute(x, target=t, relu_attributions=True)
        ggc.fns["captum GuidedGradCam"] = lambda: cggc.attribute(x, target=t, interpolate_mode="bilinear")
        sg.fns["captum NoiseTunnel"] = lambda: nt.attribute(
            xs, nt_type="smoothgrad", nt_samples=s.sg_samples,
            nt_samples_batch_size=max(1, s.sg_batch // len(xs)), stdevs=sigma, target=ts,
        )
    if with_gradcam_lib:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        pgc = GradCAM(model=model, target_layers=[layer])
        pgc_targets = [ClassifierOutputTarget(c) for c in t]
        cam.fns["pytorch-grad-cam GradCAM"] = lambda: pgc(input_tensor=x, targets=pgc_targets)

    # Correctness of the comparison, checked once before timing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = floor_gradient(model, x, t)
        ex = {m: gs.explain(model, x, method=m, target=t) for m in ("saliency", "deconvnet", "guided_backprop")}
        ex_cam = gs.explain(model, x, method="gradcam", target=t, layer=s.layer)
        check = {
            "saliency": f"= floor {rel_diff(ex['saliency'].attributions, plain):.0e}",
            "gradcam": f"= floor {rel_diff(ex_cam.attributions, floor_gradcam(model, layer, x, t)):.0e}",
        }
        facts["max |plain|"] = float(np.abs(plain).max())
        facts["gs guided - plain"] = float(np.abs(ex["guided_backprop"].attributions - plain).max())
        facts["gs deconvnet - plain"] = float(np.abs(ex["deconvnet"].attributions - plain).max())
        if with_captum:
            cg, cd = gbp.attribute(x, target=t), dec.attribute(x, target=t)
            facts["captum guided - plain"] = float(np.abs(cg.detach().numpy() - plain).max())
            facts["captum deconvnet - plain"] = float(np.abs(cd.detach().numpy() - plain).max())
            facts["gs guided vs captum"] = rel_diff(ex["guided_backprop"].attributions, cg)
            facts["gs deconvnet vs captum"] = rel_diff(ex["deconvnet"].attributions, cd)
            check["saliency"] += f", = captum {rel_diff(ex['saliency'].attributions, sal.attribute(x, target=t, abs=False)):.0e}"
            check["gradcam"] += f", = captum {rel_diff(ex_cam.attributions, lgc.attribute(x, target=t, relu_attributions=True)):.0e}"
            for m, key in (("deconvnet", "deconvnet"), ("guided_backprop", "guided")):
                if facts[f"captum {key} - plain"] == 0.0:
                    check[m] = f"captum = plain gradient (wrong); gs differs from plain by {rel_diff(ex[m].attributions, plain):.2f}"
                else:
                    check[m] = f"= captum {facts[f'gs {key} vs captum']:.0e}"
            gg = gs.explain(model, x, method="guided_gradcam", target=t, layer=s.layer).attributions
            check["guided_gradcam"] = f"vs captum {rel_diff(gg, cggc.attribute(x, target=t, interpolate_mode='bilinear')):.0e}"
    wrong = {m: "returns the plain gradient" for m in ("deconvnet", "guided_backprop") if "wrong" in check.get(m, "")}

    c = with_captum
    rows = [
        Row(s, "saliency", grads, "gs saliency", "floor gradient", "gradient", "captum Saliency" if c else None),
        Row(s, "deconvnet", grads, "gs deconvnet", "floor gradient", "plain gradient",
            "captum Deconvolution" if c else None, wrong.get("deconvnet", "")),
        Row(s, "guided_backprop", grads, "gs guided_backprop", "floor gradient", "plain gradient",
            "captum GuidedBackprop" if c else None, wrong.get("guided_backprop", "")),
        Row(s, "gradcam", cam, "gs gradcam", "floor gradcam", "hook + grad at layer", "captum LayerGradCam" if c else None,
            gradcam_lib="pytorch-grad-cam GradCAM" if with_gradcam_lib else None),
        Row(s, "guided_gradcam", ggc, "gs guided_gradcam", "floor guided_gradcam", "1 fwd + 1 plain bwd",
            "captum GuidedGradCam" if c else None, "Captum's GuidedBackprop part is plain here" if wrong else ""),
        Row(s, "smoothgrad", sg, "gs smoothgrad", "floor smoothgrad",
            f"{s.sg_images} img x {s.sg_samples} samples, batch {s.sg_batch}", "captum NoiseTunnel" if c else None),
    ]
    for row in rows:
        row.check = check.get(row.method, "")
    more_rows, more_groups = cam_family_rows(s, model, x, t, layer, floor_gradcam, Group, Row, QUICK)
    return rows + more_rows, [grads, cam, ggc, sg] + more_groups, facts


# --------------------------------------------------------------------------- memory


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def memory_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one SmoothGrad in this (fresh) process: resident memory before it and its peak, in KiB.

    A tiny warm-up call first (1 image, 1 sample) does the imports and one-time set-up, so
    that the measured growth is the call's working memory. The peak is the kernel's VmHWM
    after resetting it (falls back to ``ru_maxrss``, which cannot be reset, elsewhere).
    """
    model = cifar_resnet(functional=False)
    n, bs, samples = spec["images"], spec["batch_size"], spec["samples"]
    x = torch.randn((n, 3, 32, 32), generator=torch.Generator().manual_seed(1))
    t = [i % 10 for i in range(n)]
    impl = spec["impl"]
    sigma = float(NOISE * (x.max() - x.min()))

    def run(x: torch.Tensor, t: list[int], samples: int, bs: int) -> None:
        n = len(x)
        if impl == "gradsight":
            gs.explain(model, x, method="smoothgrad", target=t, samples=samples, batch_size=bs, noise=NOISE, seed=0)
        elif impl == "gradsight one batch":
            gs.explain(model, x, method="smoothgrad", target=t, samples=samples, batch_size=n * samples, noise=NOISE, seed=0)
        elif impl == "floor":
            floor_smoothgrad(model, x, t, samples, bs)
        elif impl == "captum":
            from captum.attr import NoiseTunnel, Saliency

            NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=max(1, bs // n), stdevs=sigma, target=t
            )
        else:
            raise ValueError(impl)

    run(x[:1], t[:1], 1, 1)
    gc.collect()
    exact = _reset_peak()
    before = _status_kib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    run(x, t, samples, bs)
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"before_kib": before, "peak_kib": peak, "seconds": seconds, "exact": exact}


def measure_memory(ms: MemorySetting, with_captum: bool, threads: int | None) -> list[dict[str, Any]]:
    impls = ["gradsight", "floor"] + (["captum"] if with_captum else []) + ["gradsight one batch"]
    results = []
    for impl in impls:
        for samples in ms.samples:
            spec = {"impl": impl, "images": ms.images, "batch_size": ms.batch_size, "samples": samples}
            proc = subprocess.run(
                [sys.executable, __file__, "--memory-probe", json.dumps(spec)]
                + ([f"--threads={threads}"] if threads else []),
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"memory probe {spec} failed:\n{proc.stderr}")
            results.append({**spec, **json.loads(proc.stdout.strip().splitlines()[-1])})
    return results


# --------------------------------------------------------------------------- report


def fmt_ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.0f}" if t >= 0.1 else f"{t * 1e3:.1f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def environment() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = [f"torch {torch.__version__}", f"gradsight {gs.__version__}" if hasattr(gs, "__version__") else "gradsight"]
    if captum_available():
        import captum

        versions.append(f"captum {captum.__version__}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    busy = load is not None and load[0] > 0.5
    return [
        *(["- **WARNING: the machine was busy at start (load average above 0.5): with other processes "
           "running, torch's OpenMP threads stall and timings are unreliable. Rerun on a quiet machine.**"]
          if busy else []),
        f"- host: `{socket.gethostname()}`, {cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"
        + (f", load average at start {load[0]:.2f}" if load else ""),
        f"- {', '.join(versions)}, Python {platform.python_version()}",
    ]


def report(
    command: str,
    quick: bool,
    env: list[str],
    rows: list[Row],
    facts: dict[str, dict[str, Any]],
    memory: list[dict[str, Any]],
    ms: MemorySetting,
    gradcam_lib: str,
    seconds: float,
) -> str:
    lines = [
        "# gradsight (PyTorch) benchmark" + (" — QUICK MODE (tiny sizes, not for reporting)" if quick else ""),
        "",
        "Reproduce (from the repository root):",
        "",
        f"    {command}",
        "",
        *env,
        f"- total wall time {seconds:.0f} s",
        "",
        "Times are medians (ms) of the repeats; each group (input gradients, gradcam, guided_gradcam,",
        "smoothgrad) interleaves its implementations in one loop. ratio = gradsight / floor, lower is",
        "better; target is the issue's limit. `floor` is bare autograd doing the same maths; for",
        "deconvnet and guided backprop it is the PLAIN gradient.",
        "",
        "| model | input | method | gradsight ms | floor ms | ratio | target | floor is | captum ms | gs / captum | check |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        g, f = r.group.median(r.gs), r.group.median(r.floor)
        c = r.group.median(r.captum) if r.captum else None
        ratio = fmt_ratio(g, f)
        tgt = TARGETS.get(r.method)
        mark = "" if tgt is None or g is None or f is None else (" ✓" if g / f <= tgt else " ✗")
        n = r.setting.shape
        cap = fmt_ms(c) + (f" ({r.captum_note})" if r.captum_note and c is not None else "")
        lines.append(
            f"| {r.setting.label} | {n[0]}x{n[1]}x{n[2]}x{n[3]} | {r.method} | {fmt_ms(g)} | {fmt_ms(f)} | {ratio}{mark} "
            f"| {'-' if tgt is None else f'{tgt:.2f}'} | {r.floor_kind} | {cap} | {fmt_ratio(g, c)} | {r.check} |"
        )
    lib_rows = [r for r in rows if r.gradcam_lib]
    lines += ["", f"pytorch-grad-cam: {gradcam_lib}."]
    if lib_rows:
        lines += ["", "| model | gradsight gradcam ms | pytorch-grad-cam ms | gs / pytorch-grad-cam |", "|---|---:|---:|---:|"]
        for r in lib_rows:
            g, p = r.group.median(r.gs), r.group.median(r.gradcam_lib)
            lines.append(f"| {r.setting.label} | {fmt_ms(g)} | {fmt_ms(p)} | {fmt_ratio(g, p)} |")

    lines += [
        "",
        "## Rules on functional ReLU",
        "",
        "max |attribution - plain gradient| over the batch (0: the method silently returned the plain",
        "gradient), with max |plain gradient| for scale:",
        "",
        "| model | max abs plain | captum GuidedBackprop | gradsight guided_backprop | captum Deconvolution | gradsight deconvnet |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, fx in facts.items():
        cells = [fx.get(k) for k in ("max |plain|", "captum guided - plain", "gs guided - plain",
                                     "captum deconvnet - plain", "gs deconvnet - plain")]
        lines.append(f"| {label} | " + " | ".join("-" if v is None else f"{v:.3g}" for v in cells) + " |")

    lines += [
        "",
        "## SmoothGrad peak memory",
        "",
        f"CIFAR ResNet-20 (nn.ReLU), {ms.images} images of 3x32x32, batch_size={ms.batch_size} rows per pass; "
        "one fresh process per cell, a tiny warm-up call first; growth = peak RSS during the call (VmHWM, reset "
        "before it) - RSS before it." + ("" if all(m.get("exact") for m in memory) else
                                          " (ru_maxrss fallback used: growth hidden below earlier peaks)"),
        "`gradsight one batch` (batch_size = images x samples) shows what growth looks like when it is not flat.",
        "",
        "| implementation | " + " | ".join(f"samples={s} growth MiB" for s in ms.samples) + " | ratio | seconds |",
        "|---|" + "---:|" * (len(ms.samples) + 2),
    ]
    for impl in dict.fromkeys(m["impl"] for m in memory):
        cells = [m for m in memory if m["impl"] == impl]
        growth = [(m["peak_kib"] - m["before_kib"]) / 1024 for m in cells]
        ratio = growth[-1] / growth[0] if growth[0] > 0 else float("nan")
        lines.append(
            f"| {impl} | " + " | ".join(f"{g:.1f}" for g in growth) + f" | {ratio:.2f} | "
            + " / ".join(f"{m['seconds']:.1f}" for m in cells) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and 1 repeat: checks that the script runs")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per group (default: 5 for ResNet-50, 25 for CIFAR (short calls, noisier); 1 with --quick)")
    p.add_argument("--only", choices=["resnet50", "cifar-module", "cifar-functional"], action="append", help="run only these models")
    p.add_argument("--no-memory", action="store_true", help="skip the SmoothGrad peak-memory probes")
    p.add_argument("--cam-family", action="store_true", help="only issue 15's rows (CAM family, IG, input x gradient, "
                   "SmoothGrad layouts): a shorter run")
    p.add_argument("--groups", default=None, help="comma-separated parts of group names to time (e.g. "
                   "'gradient CAMs,eigencam'); the others are skipped")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall: perf_counter (default); cpu: "
                   "process_time, for a busy machine, with --threads 1")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own choice)")
    p.add_argument("--out", type=Path, default=None, help="report file (default benchmarks/results/torch_<host>[-quick].md)")
    p.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    global QUICK, CLOCK
    QUICK = args.quick
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.memory_probe:
        print(json.dumps(memory_probe(json.loads(args.memory_probe))))
        return 0

    start = time.perf_counter()
    exe = os.path.relpath(sys.executable) if not os.path.relpath(sys.executable).startswith("../..") else sys.executable
    command = shlex.join([exe, os.path.relpath(__file__), *sys.argv[1:]])
    print(f"reproduce: {command}", flush=True)
    env = environment()
    with_captum = captum_available()
    lib_ok, lib_status = gradcam_lib_status()
    print("\n".join(env), flush=True)
    print(f"pytorch-grad-cam: {lib_status}", flush=True)

    rows: list[Row] = []
    facts: dict[str, dict[str, Any]] = {}
    for s in settings(args.quick, args.repeats):
        if args.only and s.key not in args.only:
            continue
        t0 = time.perf_counter()
        s_rows, groups, fx = build_rows(s, with_captum and not args.cam_family, lib_ok, args.cam_family)
        facts[s.label] = fx
        if args.groups:
            wanted = [w.strip() for w in args.groups.split(",")]
            groups = [g for g in groups if any(w in g.name for w in wanted)]
            s_rows = [r for r in s_rows if r.group in groups]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. all-zero gradients of random weights
            for g in groups:
                g.run(s.repeats)
                print(f"  {s.label}: {g.name} done ({time.perf_counter() - t0:.0f} s)", flush=True)
        rows += s_rows

    ms = memory_setting(args.quick)
    memory = [] if args.no_memory else measure_memory(ms, with_captum, args.threads)
    if args.clock == "cpu":
        env.append("- **clock: CPU time of this process (time.process_time), not wall time: measured on a busy machine**")
    text = report(command, args.quick, env, rows, facts, memory, ms, lib_status, time.perf_counter() - start)
    print()
    print(text)
    out = args.out or HERE / "results" / f"torch_{socket.gethostname()}{'-quick' if args.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
