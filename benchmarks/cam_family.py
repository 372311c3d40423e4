"""Benchmark cases for the CAM family, Integrated Gradients, input x gradient and SmoothGrad's
memory layout (issue 15), used by ``bench_torch.py`` and ``bench_keras.py``.

Floors (bare framework code doing the least each method needs):

- gradient CAMs (Grad-CAM++, XGrad-CAM, Layer-CAM, HiResCAM): the Grad-CAM floor, one forward
  and one backward to the layer (the issue's target: within 1.10x of it);
- Eigen-CAM: one forward with a hook plus the SVD of the centred (h*w x C) activations;
- Score-CAM: the C x N masked forward passes in batches of ``batch_size`` rows (masks made on
  the device: bilinear upsampling, min-max), softmax, weighted sum;
- Integrated Gradients: steps x N gradients in the same batches, weighted sum;
- input x gradient: the plain gradient times x;
- SmoothGrad with a channels-last input: the floor keeps the layout and draws the noise
  with ``torch.randn``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

TARGETS = {
    "gradcam_plus_plus": 1.10, "xgradcam": 1.10, "layercam": 1.10, "hirescam": 1.10, "eigencam": 1.10,
    "scorecam": 1.10, "integrated_gradients": 1.10, "input_x_gradient": 1.10, "smoothgrad channels_last": 1.10,
    "smoothgrad contiguous": 1.10, "gradcam (in the CAMs' loop)": 1.10,
}
GRADIENT_CAMS = ("gradcam_plus_plus", "xgradcam", "layercam", "hirescam")


# --------------------------------------------------------------------------- PyTorch floors


def torch_floors() -> dict[str, Callable[..., Any]]:
    import torch
    import torch.nn.functional as F

    def capture(model: Any, layer: Any, x: Any) -> tuple[Any, Any]:
        store: list[Any] = []
        handle = layer.register_forward_hook(lambda m, i, o: store.append(o))
        try:
            out = model(x)
        finally:
            handle.remove()
        return out, store[-1]

    def eigencam(model: Any, layer: Any, x: Any, target: list[int]) -> np.ndarray:
        with torch.no_grad():
            _, a = capture(model, layer, x)
            n, c, h, w = a.shape
            m = a.reshape(n, c, h * w).transpose(1, 2)
            m = m - m.mean(1, keepdim=True)
            v = torch.linalg.svd(m, full_matrices=False).Vh[:, 0]  # (N, C)
            return torch.relu(torch.einsum("npc,nc->np", m, v)).reshape(n, h, w).numpy()

    def scorecam(model: Any, layer: Any, x: Any, target: list[int], batch_size: int) -> np.ndarray:
        with torch.no_grad():
            _, a = capture(model, layer, x)
            n, c = a.shape[:2]
            idx = torch.tensor(target)
            per = max(1, batch_size // n)
            scores = torch.empty(c, n)
            for c0 in range(0, c, per):
                k = min(per, c - c0)
                maps = a[:, c0:c0 + k].transpose(0, 1).reshape(k * n, 1, *a.shape[2:])
                up = F.interpolate(maps, size=x.shape[2:], mode="bilinear", align_corners=False)
                lo, hi = up.amin((2, 3), keepdim=True), up.amax((2, 3), keepdim=True)
                mask = torch.where(hi > lo, (up - lo) / (hi - lo), torch.zeros_like(up))
                out = model(x.repeat(k, 1, 1, 1) * mask)
                scores[c0:c0 + k] = out.gather(1, idx.repeat(k)[:, None]).reshape(k, n)
            w = torch.softmax(scores, 0).T  # (N, C)
            return torch.relu((w[:, :, None, None] * a).sum(1)).numpy()

    def integrated_gradients(model: Any, x: Any, target: list[int], steps: int, batch_size: int) -> np.ndarray:
        n = len(x)
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        alphas, weights = 0.5 * (nodes + 1), 0.5 * weights
        per = max(1, batch_size // n)
        idx = torch.tensor(target)
        total = torch.zeros_like(x)
        for s0 in range(0, steps, per):
            k = min(per, steps - s0)
            a = torch.tensor(alphas[s0:s0 + k], dtype=x.dtype).repeat_interleave(n).view(-1, 1, 1, 1)
            rows = (a * x.repeat(k, 1, 1, 1)).requires_grad_(True)
            (g,) = torch.autograd.grad(model(rows).gather(1, idx.repeat(k)[:, None]).sum(), rows)
            wt = torch.tensor(weights[s0:s0 + k], dtype=x.dtype).view(k, 1, 1, 1, 1)
            total += (g.reshape(k, *x.shape) * wt).sum(0)
        return (x * total).numpy()

    def input_x_gradient(model: Any, x: Any, target: list[int]) -> np.ndarray:
        xin = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xin).gather(1, torch.tensor(target)[:, None]).sum(), xin)
        return (x * g).numpy()

    def smoothgrad(model: Any, x: Any, target: list[int], samples: int, batch_size: int, noise: float) -> np.ndarray:
        """gradsight's loop, keeping x's memory layout, noise from torch.randn."""
        n = x.shape[0]
        fmt = torch.channels_last if not x.is_contiguous() else torch.contiguous_format
        gen = torch.Generator().manual_seed(0)
        flat = x.reshape(n, -1)
        sigma = (noise * (flat.amax(1) - flat.amin(1))).view(n, 1, 1, 1)
        per = max(1, batch_size // n)
        idx = torch.tensor(target)
        total = torch.zeros_like(x)
        for s0 in range(0, samples, per):
            k = min(per, samples - s0)
            eps = torch.randn((k * n, *x.shape[1:]), generator=gen).contiguous(memory_format=fmt)
            rows = (x.repeat(k, 1, 1, 1).contiguous(memory_format=fmt) + eps * sigma.repeat(k, 1, 1, 1))
            rows.requires_grad_(True)
            (g,) = torch.autograd.grad(model(rows).gather(1, idx.repeat(k)[:, None]).sum(), rows)
            total += g.reshape(k, *x.shape).sum(0)
        return (total / samples).numpy()

    return {"capture": capture, "eigencam": eigencam, "scorecam": scorecam, "integrated_gradients": integrated_gradients,
            "input_x_gradient": input_x_gradient, "smoothgrad": smoothgrad}


def torch_rows(s: Any, model: Any, x: Any, t: list[int], layer: Any, floor_gradcam: Callable[..., Any],
               Group: Any, Row: Any, quick: bool) -> tuple[list[Any], list[Any]]:
    """Rows and groups for one setting of ``bench_torch.py``."""
    import torch

    import gradsight as gs

    fl = torch_floors()
    rel = _rel

    def explain(method: str, x_: Any = x, t_: Any = t, **kw: Any) -> Callable[[], Any]:
        return lambda: gs.explain(model, x_, method=method, target=t_, **kw)

    # gradsight's own Grad-CAM in the same group: the CAMs' overhead over it is measured in the same loop
    cams = Group("gradient CAMs", {f"gs {m}": explain(m, layer=s.layer) for m in ("gradcam",) + GRADIENT_CAMS})
    cams.fns["floor gradcam"] = lambda: floor_gradcam(model, layer, x, t)
    eig = Group("eigencam", {"gs eigencam": explain("eigencam", layer=s.layer),
                             "floor eigencam": lambda: fl["eigencam"](model, layer, x, t)})
    ixg = Group("input_x_gradient", {"gs input_x_gradient": explain("input_x_gradient"),
                                     "floor input_x_gradient": lambda: fl["input_x_gradient"](model, x, t)})
    xs, ts = x[: s.sg_images].contiguous(), t[: s.sg_images]
    steps = 2 * s.sg_samples  # IG's fixed cost (2 forwards of N: y(x), y(x')) is ~2 / (3 steps) of the floor
    ig = Group("integrated_gradients", {
        "gs integrated_gradients": explain("integrated_gradients", xs, ts, steps=steps, batch_size=s.sg_batch),
        "floor integrated_gradients": lambda: fl["integrated_gradients"](model, xs, ts, steps, s.sg_batch),
    })
    floor_is = "Grad-CAM floor: 1 fwd + 1 bwd to layer"
    rows = [Row(s, m, cams, f"gs {m}", "floor gradcam", floor_is + (" (gs gradcam in the CAMs' loop)" if m == "gradcam" else ""))
            for m in ("gradcam",) + GRADIENT_CAMS]
    rows += [
        Row(s, "eigencam", eig, "gs eigencam", "floor eigencam", "1 fwd + torch SVD"),
        Row(s, "input_x_gradient", ixg, "gs input_x_gradient", "floor input_x_gradient", "gradient x input"),
        Row(s, "integrated_gradients", ig, "gs integrated_gradients", "floor integrated_gradients",
            f"{s.sg_images} img x {steps} steps, batch {s.sg_batch}"),
    ]
    groups = [cams, eig, ixg, ig]
    # one check each, before timing
    ex = {m: gs.explain(model, x, method=m, target=t, layer=s.layer).attributions for m in ("eigencam",)}
    rows[-3].check = f"= floor {rel(ex['eigencam'], fl['eigencam'](model, layer, x, t)):.0e}"
    rows[-2].check = f"= floor {rel(gs.input_x_gradient(model, x, target=t).attributions, fl['input_x_gradient'](model, x, t)):.0e}"
    rows[-1].check = f"= floor {rel(ig.fns['gs integrated_gradients']().attributions, ig.fns['floor integrated_gradients']()):.0e}"
    if s.key != "resnet50":  # C x N full forward passes: the CIFAR models only on CPU (ResNet-50: 2048 x 8)
        n_sc = 8 if quick else 16
        xsc, tsc, bs = x[:n_sc].contiguous(), t[:n_sc], 256
        sc = Group("scorecam", {
            "gs scorecam": explain("scorecam", xsc, tsc, layer=s.layer, batch_size=bs),
            "floor scorecam": lambda: fl["scorecam"](model, layer, xsc, tsc, bs),
        })
        row = Row(s, "scorecam", sc, "gs scorecam", "floor scorecam", f"{n_sc} img x C=64 masked fwd, batch {bs}")
        row.check = f"= floor {rel(sc.fns['gs scorecam']().attributions, sc.fns['floor scorecam']()):.0e}"
        rows.append(row)
        groups.append(sc)
    if s.key == "cifar-functional":  # SmoothGrad's memory layout (issue 15): 64 images, 16 samples
        n_img, samples = (16, 4) if quick else (64, 16)
        base = torch.randn((n_img, 32, 32, 3), generator=torch.Generator().manual_seed(2))
        for layout, xl in (("channels_last", base.permute(0, 3, 1, 2)), ("contiguous", base.permute(0, 3, 1, 2).contiguous())):
            for bs in ((16, 64) if quick else (64, 256, 1024)):
                tl = [i % 10 for i in range(n_img)]
                opts = {"samples": samples, "batch_size": bs, "noise": 0.15, "seed": 0}
                g = Group(f"smoothgrad {layout} b{bs}", {
                    "gs": lambda xl=xl, tl=tl, opts=opts: gs.explain(model, xl, method="smoothgrad", target=tl, **opts),
                    "floor": lambda xl=xl, tl=tl, bs=bs: fl["smoothgrad"](model, xl, tl, samples, bs, 0.15),
                })
                rows.append(Row(s, f"smoothgrad {layout}", g, "gs", "floor",
                                f"{n_img} img x {samples} samples, batch {bs}, layout kept, torch.randn"))
                groups.append(g)
    return rows, groups


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64).reshape(np.shape(a))
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


# --------------------------------------------------------------------------- Keras


def keras_cases(
    model: Any, x: np.ndarray, target: list[int], layer: str, quick: bool, ig_batch: int = 16, sc_images: int = 0
) -> dict[str, dict[str, Callable[[], Any]]]:
    """``{group: {method: fn, ..., "floor...": fn}}`` for ``bench_keras.py`` (tf.function floors), each
    group timed interleaved; IG: 16 steps in passes of ``ig_batch`` rows (4 / 4 with ``quick``);
    Score-CAM on the first ``sc_images`` images when > 0."""
    import keras
    import tensorflow as tf

    import gradsight as gs

    grad_model = keras.Model(model.input, [model.get_layer(layer).output, model.output])
    classes = np.array(target, np.int64)
    # Every floor starts from the numpy batch and the class list, as gradsight's call does (and as
    # bench_keras.floors does): converting them is part of each call on both sides.

    @tf.function
    def cam_floor(x: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            a, out = grad_model(x, training=False)
            score = tf.reduce_sum(tf.gather(out, idx, axis=1, batch_dims=1))
        w = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(w * a, axis=-1))

    @tf.function
    def eigen_floor(x: tf.Tensor) -> tf.Tensor:
        a, _ = grad_model(x, training=False)
        n, h, w, c = a.shape
        m = tf.reshape(a, (n, h * w, c))
        m = m - tf.reduce_mean(m, axis=1, keepdims=True)
        _, _, v = tf.linalg.svd(m)
        return tf.nn.relu(tf.reshape(tf.einsum("npc,nc->np", m, v[:, :, 0]), (n, h, w)))

    @tf.function
    def grad_floor(rows: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(rows)
            score = tf.reduce_sum(tf.gather(model(rows, training=False), idx, axis=1, batch_dims=1))
        return tape.gradient(score, rows)

    n = len(x)
    steps, batch = (4, 4) if quick else (16, ig_batch)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = 0.5 * (nodes + 1), 0.5 * weights

    def ig_floor() -> np.ndarray:
        xt, idx = tf.constant(x), tf.constant(classes)
        per = max(1, batch // n)
        total = tf.zeros_like(xt)
        for s0 in range(0, steps, per):
            k = min(per, steps - s0)
            a = tf.constant(np.repeat(alphas[s0:s0 + k], n).astype(np.float32).reshape(-1, 1, 1, 1))
            g = grad_floor(a * tf.tile(xt, [k, 1, 1, 1]), tf.tile(idx, [k]))
            wt = tf.constant(weights[s0:s0 + k].astype(np.float32).reshape(k, 1, 1, 1, 1))
            total += tf.reduce_sum(tf.reshape(g, (k,) + tuple(x.shape)) * wt, axis=0)
        return (xt * total).numpy()

    # one group for the gradient CAMs, gradsight's own Grad-CAM in it: overheads measured in the same loop
    cams: dict[str, Callable[[], Any]] = {
        (f"{m} (in the CAMs' loop)" if m == "gradcam" else m): (
            lambda m=m: gs.explain(model, x, method=m, target=target, layer=layer)
        ) for m in ("gradcam",) + GRADIENT_CAMS
    }
    def ixg_floor() -> np.ndarray:
        xt = tf.constant(x)
        return (xt * grad_floor(xt, tf.constant(classes))).numpy()

    cams["floor (Grad-CAM)"] = lambda: cam_floor(tf.constant(x), tf.constant(classes)).numpy()
    cases: dict[str, dict[str, Callable[[], Any]]] = {"gradient CAMs": cams}
    cases["eigencam"] = {"eigencam": lambda: gs.eigencam(model, x, target=target, layer=layer),
                         "floor": lambda: eigen_floor(tf.constant(x)).numpy()}
    cases["input_x_gradient"] = {"input_x_gradient": lambda: gs.input_x_gradient(model, x, target=target),
                                 "floor": ixg_floor}
    cases["integrated_gradients"] = {
        "integrated_gradients": lambda: gs.integrated_gradients(model, x, target=target, steps=steps, batch_size=batch),
        "floor": ig_floor,
    }
    if sc_images:  # C x N masked forward passes: the CIFAR model only on CPU (ResNet50: 2048 x 8)
        xs, ts = x[:sc_images], target[:sc_images]
        cases["scorecam"] = {
            "scorecam": lambda: gs.scorecam(model, xs, target=ts, layer=layer, batch_size=256),
            "floor": lambda: keras_scorecam_floor(model, grad_model, xs, ts, 256),
        }
    return cases


def keras_scorecam_floor(model: Any, grad_model: Any, x: np.ndarray, target: list[int], batch_size: int) -> np.ndarray:
    """Score-CAM in plain TensorFlow: each channel's map resized (bilinear, half-pixel centres, which is
    ``align_corners=False``) and min-max normalised, the masked images through the model in
    ``batch_size`` rows, softmax over channels, ReLU of the weighted sum."""
    import tensorflow as tf

    xt = tf.constant(x)
    a, _ = grad_model(xt, training=False)  # (N, h, w, C)
    n, c = int(a.shape[0]), int(a.shape[-1])
    idx = tf.constant(np.array(target, np.int64))
    per = max(1, batch_size // n)
    fwd = tf.function(lambda rows: model(rows, training=False))
    scores = []
    for c0 in range(0, c, per):
        k = min(per, c - c0)
        up = tf.image.resize(a[..., c0:c0 + k], x.shape[1:3], method="bilinear")  # (N, H, W, k)
        lo = tf.reduce_min(up, axis=(1, 2), keepdims=True)
        hi = tf.reduce_max(up, axis=(1, 2), keepdims=True)
        mask = tf.where(hi > lo, (up - lo) / tf.where(hi > lo, hi - lo, 1.0), 0.0)
        rows = tf.reshape(tf.transpose(mask, (3, 0, 1, 2))[..., None] * xt[None], (k * n,) + tuple(x.shape[1:]))
        out = fwd(rows)
        scores.append(tf.reshape(tf.gather(out, tf.tile(idx, [k]), axis=1, batch_dims=1), (k, n)))
    w = tf.nn.softmax(tf.concat(scores, 0), axis=0)  # (C, N)
    return tf.nn.relu(tf.einsum("cn,nhwc->nhw", w, a)).numpy()


# --------------------------------------------------------------------------- memory (PyTorch)
# python benchmarks/cam_family.py --memory: one fresh process per cell, peak RSS growth of the call.


def _status_kib(key: str) -> int | None:
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def memory_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Integrated Gradients at ``steps``, or Score-CAM at a layer of C channels, in this process."""
    import gc
    import sys
    import time
    from pathlib import Path

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from models import cifar_resnet

    import gradsight as gs

    model = cifar_resnet(functional=False)
    x = torch.randn((spec["images"], 3, 32, 32), generator=torch.Generator().manual_seed(1))
    t = [i % 10 for i in range(spec["images"])]

    def run(x: Any, t: list[int]) -> None:
        if spec["method"] == "integrated_gradients":
            gs.integrated_gradients(model, x, target=t, steps=spec["steps"], batch_size=spec["batch_size"])
        else:
            gs.scorecam(model, x, target=t, layer=spec["layer"], batch_size=spec["batch_size"])

    run(x[:1], t[:1])
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    run(x, t)
    return {"growth_mib": ((_status_kib("VmHWM") or 0) - (before or 0)) / 1024, "seconds": time.perf_counter() - t0}


def memory_table(images: int = 8, batch_size: int = 64) -> str:
    import json
    import subprocess
    import sys

    cells = [
        ("integrated_gradients", {"steps": 16}, "steps=16"), ("integrated_gradients", {"steps": 128}, "steps=128"),
        ("scorecam", {"layer": "layer1"}, "C=16 (layer1)"), ("scorecam", {"layer": "layer3"}, "C=64 (layer3)"),
    ]
    lines = [f"CIFAR ResNet-20, {images} images, batch_size={batch_size}; peak RSS growth of the call (VmHWM reset).", "",
             "| method | setting | growth MiB | seconds |", "|---|---|---:|---:|"]
    for method, extra, label in cells:
        spec = {"method": method, "images": images, "batch_size": batch_size, **extra}
        out = subprocess.run([sys.executable, __file__, "--memory-probe", json.dumps(spec)],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        lines.append(f"| {method} | {label} | {r['growth_mib']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--memory-probe":
        print(json.dumps(memory_probe(json.loads(sys.argv[2]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--memory":
        print(memory_table())
    else:
        print(__doc__)
