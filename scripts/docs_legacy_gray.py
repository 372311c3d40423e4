"""Make docs/legacy_gray_*.png: the CLI on a 1-channel softmax CNN saved in the TF1-era Keras .h5 layout.

Real Keras 2 (tf-keras) trains a small gray-scale CNN with a softmax head on the bundled shapes
images (gray, 32x32), saves it as .h5, and the file is rewritten in the Keras 2.2.4 layout
(Sequential without InputLayer, ``batch_input_shape`` on the first layer) — the file of a user
who trained a model years ago. Then, as that user would:

    gradsight explain shape_*.png --model gray_shapes_tf1.h5 --method all --out OUT

(images read as gray, the softmax explained as logits, the automatic layer printed).

Run from the repository root (about a minute on two cores):
    python scripts/docs_legacy_gray.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from gradsight.cli import main  # noqa: E402
from gradsight.demo.shapes import CLASSES, generate  # noqa: E402

SIZE = 32


def gray(images: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in images])


def train(path: Path) -> float:
    import tf_keras as k2

    k2.utils.set_random_seed(0)
    train_set, test_set = generate(4000, seed=3, size=SIZE), generate(500, seed=4, size=SIZE)
    x, y = gray(train_set.images)[..., None] / 255.0, train_set.labels
    L = k2.layers
    model = k2.Sequential([
        L.Conv2D(16, 3, padding="same", activation="relu", input_shape=(SIZE, SIZE, 1), name="conv2d_1"),
        L.Conv2D(16, 3, padding="same", activation="relu", name="conv2d_2"),
        L.MaxPooling2D(name="max_pooling2d_1"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_3"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_4"),
        L.MaxPooling2D(name="max_pooling2d_2"),
        L.Dropout(0.25, name="dropout_1"),
        L.Flatten(name="flatten_1"),
        L.Dense(len(CLASSES), activation="softmax", name="dense_1"),
    ], name="sequential_1")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    acc = float(model.evaluate(gray(test_set.images)[..., None] / 255.0, test_set.labels, verbose=0)[1])
    model.save(path)
    with h5py.File(path, "r+") as f:  # the Keras 2.2.4 layout: no InputLayer
        config = json.loads(f.attrs["model_config"])
        layers = config["config"]["layers"]
        if layers[0]["class_name"] == "InputLayer":
            layers.pop(0)
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.2.4"
    return acc


def run(out: Path) -> None:
    work = Path(tempfile.mkdtemp())
    try:
        model = work / "gray_shapes_tf1.h5"
        acc = train(model)
        print(f"test accuracy {acc:.3f} (500 images)")
        samples = generate(6, seed=12345, size=SIZE)
        paths = []
        for i in (0, 3):  # a circle and a star
            p = work / f"shape_{CLASSES[samples.labels[i]]}.png"
            Image.fromarray(gray(samples.images[i:i + 1])[0]).save(p)
            paths.append(str(p))
        rc = main(["explain", *paths, "--model", str(model), "--method", "all", "--out", str(work / "out")])
        if rc:
            sys.exit(rc)
        out.mkdir(parents=True, exist_ok=True)
        for grid in sorted((work / "out").glob("*_grid.png")):
            shutil.copy(grid, out / f"legacy_gray_{grid.name}")
            print("wrote", out / f"legacy_gray_{grid.name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", type=Path)
    run(parser.parse_args().out)
