#!/usr/bin/env python
"""gradsight (Keras) against a hand-written ``tf.function`` floor and tf-keras-vis.

``keras.applications.ResNet50(weights=None)`` (its softmax head kept: every implementation
explains the same softmax score), a batch of 8 x 224 x 224 x 3, one explicit class per
sample, CPU. Grad-CAM at ``conv5_block3_out`` (the last conv stage) and saliency.

Every ratio is a ratio of medians measured in this one run, the implementations of a
group interleaved in the same loop (a warm-up call each, then ``--repeats`` rounds, the
order shuffled every round, seeded by the round). First-call latency (tracing included) is measured before
any warm-up and reported separately.

    python benchmarks/bench_keras.py            # full run
    python benchmarks/bench_keras.py --quick    # 2 x 64 x 64, 1 repeat: checks the script

Prints one markdown report and writes it to ``benchmarks/results/keras_<host>[-quick].md``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import random
import shlex
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
LAYER = "conv5_block3_out"
TARGETS = {"saliency": 1.10, "gradcam": 1.10}  # gradsight / floor, from the issue
PEER_TARGET = 4.0  # tf-keras-vis / gradsight, from the issue


def build_cifar(quick: bool) -> tuple[Any, np.ndarray, list[int]]:
    """The CIFAR ResNet-20 of ``keras_models.py`` (logits), 64 x 32 x 32 x 3 (8 with ``quick``)."""
    sys.path.insert(0, str(HERE))
    from keras_models import cifar_resnet

    n = 8 if quick else 64
    x = np.random.default_rng(1).normal(size=(n, 32, 32, 3)).astype(np.float32)
    return cifar_resnet(), x, [(7 * i + 3) % 10 for i in range(n)]


def build(quick: bool) -> tuple[Any, np.ndarray, list[int]]:
    import keras

    size, n = (64, 2) if quick else (224, 8)
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    x = np.random.default_rng(1).normal(size=(n, size, size, 3)).astype(np.float32)
    return model, x, [(7 * i + 3) % 1000 for i in range(n)]


def floors(model: Any, layer: str) -> dict[str, Callable[[np.ndarray, np.ndarray], Any]]:
    """Hand-written tf.function: the same maths as each method, nothing else."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(model.input, [model.get_layer(layer).output, model.output])

    @tf.function
    def saliency(x: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(tf.gather(model(x, training=False), idx, axis=1, batch_dims=1))
        return tape.gradient(score, x)

    @tf.function
    def gradcam(x: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            a, out = grad_model(x, training=False)
            score = tf.reduce_sum(tf.gather(out, idx, axis=1, batch_dims=1))
        w = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
        return tf.nn.relu(tf.reduce_sum(w * a, axis=-1))

    return {
        "saliency": lambda x, idx: saliency(tf.constant(x), tf.constant(idx)).numpy(),
        "gradcam": lambda x, idx: gradcam(tf.constant(x), tf.constant(idx)).numpy(),
    }


def peers(model: Any, layer: str, target: list[int]) -> tuple[dict[str, Callable[[np.ndarray], Any]], str]:
    if importlib.util.find_spec("tf_keras_vis") is None:
        return {}, "tf-keras-vis: not installed (pip install tf-keras-vis==0.8.7)"
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    score = CategoricalScore(target)
    cam, sal = Gradcam(model, clone=False), Saliency(model, clone=False)
    import tf_keras_vis

    # seek_penultimate_conv_layer=False: otherwise tf-keras-vis moves from conv5_block3_out (an
    # Activation layer) back to the nearest Conv2D and explains another layer.
    return {
        "saliency": lambda x, **kw: sal(score, x, **kw),
        "gradcam": lambda x, **kw: cam(score, x, penultimate_layer=layer, seek_penultimate_conv_layer=False, **kw),
    }, f"tf-keras-vis {getattr(tf_keras_vis, '__version__', '?')}: measured"


CLOCK = time.perf_counter  # --clock cpu: time.process_time (with --threads 1, for a busy machine)


def timed(fn: Callable[[], Any]) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    names = list(fns)
    for name in names:
        fns[name]()  # warm-up
    # One full collection before the rounds, none forced between calls (Python's automatic gc stays
    # on, as in a user's loop): with TensorFlow loaded a full collection walks ~430,000 objects
    # (~0.23 s) and leaves the caches cold, which added 15-20 ms to the next ~25 ms call on both
    # sides (CIFAR ResNet-20: floor 25 -> 44 ms) and measured the collector more than the methods.
    gc.collect()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        # a seeded shuffle per round, not a rotation: a rotation keeps each call's predecessor fixed
        # (the first method always ran right after the floor), a bias the shuffle spreads evenly
        for name in random.Random(r).sample(names, len(names)):
            times[name].append(timed(fns[name]))
    return {name: statistics.median(t) for name, t in times.items()}


def rel_diff(a: Any, b: Any) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64).reshape(np.shape(a))
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale) if scale > 0 else float(np.abs(a - b).max())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny input, 1 repeat (checks the script)")
    p.add_argument("--repeats", type=int, help="timed rounds per group (default 5; --quick: 1)")
    p.add_argument("--model", choices=["resnet50", "cifar"], default="resnet50",
                   help="resnet50: keras.applications.ResNet50 8x224^2 (default); cifar: a CIFAR ResNet-20 64x32^2 "
                   "(logits, benchmarks/keras_models.py), issue 15's rows only")
    p.add_argument("--groups", default=None, help="comma-separated parts of issue 15's group names to time "
                   "(gradient CAMs, eigencam, input_x_gradient, integrated_gradients); the others are skipped")
    p.add_argument("--cam-family", action="store_true", help="issue 15's rows only (no saliency/gradcam/tf-keras-vis)")
    p.add_argument("--threads", type=int, default=None, help="TensorFlow intra- and inter-op threads")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall: perf_counter (default); cpu: "
                   "process_time, for a busy machine, with --threads 1")
    args = p.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 5)
    warnings.simplefilter("ignore")  # the softmax head warns (SaturationWarning) on every call

    import keras
    import tensorflow as tf

    import gradsight as gs

    load = os.getloadavg()[0]
    cifar = args.model == "cifar"
    family_only = args.cam_family or cifar
    if cifar:
        from keras_models import CIFAR_LAYER as layer
    else:
        layer = LAYER
    model, x, target = build_cifar(args.quick) if cifar else build(args.quick)
    idx = np.array(target, np.int64)
    floor = floors(model, layer)
    peer, peer_note = ({}, "tf-keras-vis: not run (--cam-family)") if family_only else peers(model, layer, target)
    mine = {
        "saliency": lambda: gs.saliency(model, x, target=target),
        "gradcam": lambda: gs.gradcam(model, x, target=target, layer=layer),
    }
    model(x[:1], training=False)  # process-wide one-time costs (kernels, thread pools) paid by nobody

    first: dict[str, float] = {}
    for method in () if family_only else ("saliency", "gradcam"):
        first[f"gradsight {method}"] = timed(mine[method])
        first[f"floor {method}"] = timed(lambda m=method: floor[m](x, idx))
        if method in peer:
            first[f"tf-keras-vis {method}"] = timed(lambda m=method: peer[m](x))

    checks = {
        "saliency": rel_diff(mine["saliency"]().attributions, floor["saliency"](x, idx)),
        "gradcam": rel_diff(mine["gradcam"]().attributions, floor["gradcam"](x, idx)),
    }
    if peer and not family_only:
        checks["saliency vs tf-keras-vis (max_c |g|)"] = rel_diff(
            np.abs(mine["saliency"]().attributions).max(-1), peer["saliency"](x, normalize_map=False)
        )
        checks["gradcam vs tf-keras-vis (raw map)"] = rel_diff(
            mine["gradcam"]().attributions, np.asarray(peer["gradcam"](x, expand_cam=False, normalize_cam=False))
        )

    # issue 15: the CAM family, IG and input x gradient against tf.function floors
    sys.path.insert(0, str(HERE))
    from cam_family import TARGETS as CAM_FAMILY_TARGETS
    from cam_family import keras_cases

    TARGETS.update(CAM_FAMILY_TARGETS)
    extra = keras_cases(model, x, target, layer, args.quick, ig_batch=128 if cifar else 16,
                        sc_images=(8 if args.quick else 16) if cifar else 0)

    if args.groups:
        wanted = [w.strip() for w in args.groups.split(",")]
        extra = {k: v for k, v in extra.items() if any(w in k for w in wanted)}
    if "scorecam" in extra:
        checks["scorecam vs its floor"] = rel_diff(extra["scorecam"]["scorecam"]().attributions, extra["scorecam"]["floor"]())
    rows = []
    for fns in extra.values():
        for name, fn in fns.items():
            if not name.startswith("floor"):
                fn()  # forward-only passes trace at a shape's 2nd call: let the warm-up be that call
        med = interleaved(dict(fns), repeats)
        floor_name = next(k for k in med if k.startswith("floor"))
        for name in med:
            if name != floor_name:
                rows.append((name, {"gradsight": med[name], "floor": med[floor_name]}))
    for method in () if family_only else ("saliency", "gradcam"):
        fns = {"gradsight": mine[method], "floor": lambda m=method: floor[m](x, idx)}
        if method in peer:
            fns["tf-keras-vis"] = lambda m=method: peer[m](x)
        med = interleaved(fns, repeats)
        rows.append((method, med))

    lines = [
        f"# gradsight Keras benchmark ({'quick' if args.quick else 'full'})",
        "",
        f"{socket.gethostname()}, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; "
        f"{'CIFAR ResNet-20 (keras_models.py, logits)' if cifar else 'ResNet50(weights=None)'} at {layer}, batch {x.shape}, "
        f"{repeats} rounds, medians. {peer_note}. Load average at start: {load:.2f}"
        + (" (busy machine: ratios are noisy)." if load > 0.5 else ".")
        + (" **Clock: CPU time of this process (process_time), not wall time.**" if args.clock == "cpu" else ""),
        "",
        "| method | gradsight s | floor s | tf-keras-vis s | gradsight / floor (target) | tf-keras-vis / gradsight (target) |",
        "|---|---|---|---|---|---|",
    ]
    for method, med in rows:
        g, f, v = med["gradsight"], med["floor"], med.get("tf-keras-vis")
        vis = f"{v:.3f}" if v is not None else "-"
        speedup = f"{v / g:.2f}x (>= {PEER_TARGET:.0f}x)" if v is not None else "-"
        lines.append(f"| {method} | {g:.3f} | {f:.3f} | {vis} | {g / f:.3f} (<= {TARGETS[method]:.2f}) | {speedup} |")
    lines += ["", "First call (tracing included), seconds:", ""]
    lines += [f"- {name}: {t:.2f}" for name, t in first.items()]
    lines += ["", "Agreement (max |a - b| / max |b|):", ""]
    lines += [f"- {name}: {v:.1e}" for name, v in checks.items()]
    tag = ("-cifar" if cifar else "") + ("-cam-family" if args.cam_family and not cifar else "") + ("-quick" if args.quick else "")
    lines.insert(2, f"Reproduce: `python benchmarks/bench_keras.py {shlex.join(argv if argv is not None else sys.argv[1:])}`")
    lines.insert(3, "")
    report = "\n".join(lines) + "\n"
    print(report)
    out = HERE / "results" / f"keras_{socket.gethostname()}{tag}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
