"""The CLI offers what its messages mention (issue 9, finding 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradsight.cli import main
from gradsight.cli._io import cli_words
from robust_helpers import one_line_error

torch = pytest.importorskip("torch")

NETS = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x)).mean((2, 3))
        return self.a(h), self.b(h)


def two_heads():
    return TwoHeads()


def flat():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8), nn.ReLU(), nn.Linear(8, 3))
'''


@pytest.fixture()
def nets(tmp_path, monkeypatch):
    name = f"gsnets_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture()
def image(tmp_path):
    path = tmp_path / "pic.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def test_api_words_become_cli_flags():
    assert cli_words("the model returns 2 outputs; choose one with output=INDEX.") == \
        "the model returns 2 outputs; choose one with --output INDEX."
    assert cli_words("Pass logits=True to explain the pre-softmax scores.") == \
        "Pass --logits to explain the pre-softmax scores."
    assert cli_words("pass layer=NAME (`gradsight layers`)") == "pass --layer NAME (`gradsight layers`)"
    assert cli_words("(or another call=).") == "(or another --call)."
    assert cli_words("x.permute(0, 3, 1, 2)") == "x.permute(0, 3, 1, 2)"


def test_output_flag_exists_where_the_message_points(nets, image, tmp_path, capsys):
    spec = f"{nets}:two_heads"
    rc = main(["explain", str(image), "--model", spec, "--method", "saliency", "--size", "32", "--out", str(tmp_path / "a")])
    one_line_error(rc, capsys.readouterr().err, "--output INDEX")
    assert main(["explain", str(image), "--model", spec, "--method", "saliency", "--size", "32", "--output", "1",
                 "--out", str(tmp_path / "b")]) == 0
    # the second head (2 classes) was explained: its classes are 0 or 1
    assert "predicted" in capsys.readouterr().out and (tmp_path / "b" / "pic_saliency.png").exists()


def test_logits_flag_exists_where_the_warning_points(image, tmp_path, capsys):
    keras = pytest.importorskip("keras")
    pytest.importorskip("gradsight.backends.keras")
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "soft.keras")
    args = ["explain", str(image), "--model", str(tmp_path / "soft.keras"), "--method", "gradcam"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    # since issue 10 a softmax model is explained on its logits by default, and a note names the other flag
    assert "pre-softmax" in err and "--probabilities" in err and "logits=True" not in err
    assert main([*args, "--probabilities", "--out", str(tmp_path / "p")]) == 0  # the flag the note names exists
    capsys.readouterr()
    assert main([*args, "--logits", "--out", str(tmp_path / "b")]) == 0
    assert "softmax" not in capsys.readouterr().err


def test_method_all_without_a_spatial_layer_skips_cam_with_one_note(nets, image, tmp_path, capsys):
    rc = main(["explain", str(image), "--model", f"{nets}:flat", "--method", "all", "--size", "32", "--samples", "2",
               "--out", str(tmp_path), "--plain"])
    err = capsys.readouterr().err
    assert rc == 0, err
    notes = [ln for ln in err.splitlines() if "skipping" in ln]
    assert len(notes) == 1 and "gradcam, guided_gradcam" in notes[0]
    grid = np.asarray(Image.open(tmp_path / "pic_grid.png"))
    assert 5 * 128 < grid.shape[1] < 5 * 140  # input + 4 gradient methods
    one_line_error(main(["explain", str(image), "--model", f"{nets}:flat", "--method", "gradcam", "--size", "32",
                         "--out", str(tmp_path / "c")]), capsys.readouterr().err, "--layer NAME")


def test_console_script_finds_a_package_in_the_current_folder(image, tmp_path):
    pkg = tmp_path / "work" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(NETS)
    script = Path(sys.executable).with_name("gradsight")
    if not script.exists():
        pytest.skip("the gradsight console script is not installed in this environment")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"), TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([str(script), "explain", str(image), "--model", "mypkg.nets:flat", "--method", "saliency",
                          "--size", "32", "--out", str(tmp_path / "o")], cwd=pkg.parent, env=env,
                         capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "o" / "pic_saliency.png").exists()
