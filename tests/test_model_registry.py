"""One registry of bundled models, used by every command of the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from gradsight.cli import COMMANDS, build_parser, main
from gradsight.demo.registry import BUNDLED
from gradsight.models import load_model


def test_every_model_command_offers_every_bundled_model(capsys):
    assert list(BUNDLED) == ["demo", "demo-detector", "demo-mlp", "demo-vit", "demo-fine", "demo-loc"]
    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    with_model = [name for name, parents in COMMANDS if "model" in parents]
    assert with_model == ["explain", "layers", "embed", "filters", "units", "weights", "serve", "run", "evaluate"]
    for name in with_model:
        help_text = next(a.help for a in subs[name]._actions if a.dest == "model")
        for bundled in BUNDLED:
            assert f"'{bundled}'" in help_text, (name, help_text)


def test_demo_mlp_through_the_registry_is_the_bundled_mlp():
    torch = pytest.importorskip("torch")
    from gradsight.demo.mlp import load_mlp_model, make_moons

    model, info = load_model("demo-mlp")
    assert info.layout == "NC" and not info.takes_images and info.class_names == ("upper moon", "lower moon")
    x, _ = make_moons(20, seed=3)
    with torch.no_grad():
        np.testing.assert_array_equal(model(torch.from_numpy(x)).numpy(), load_mlp_model()(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["layers", "--model", "demo-mlp"], "takes 2-D points"),
        (["weights", "--model", "demo-mlp", "--weights", "w.pt"], "not 'demo-mlp'"),
    ],
)
def test_bundled_model_misuse_is_a_one_line_error(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gradsight: error: ") and needle in err[0], err
