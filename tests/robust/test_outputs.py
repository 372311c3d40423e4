"""The CLI never loses a file (issue 9, finding 2): existing outputs, clashing stems, inputs, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradsight import render
from gradsight.cli import main
from gradsight.outputs import OutputPlan, atomic_path, output_names
from robust_helpers import one_line_error


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_existing_output_is_refused_before_any_work_and_listed(pngs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "img1_saliency.png").write_bytes(b"precious")
    (out / "img2_saliency.png").write_bytes(b"precious too")
    rc = main(["explain", *map(str, pngs), "--model", "demo", "--method", "saliency", "--out", str(out)])
    line = one_line_error(rc, capsys.readouterr().err, "2 output file(s) already exist", "img1_saliency.png",
                          "img2_saliency.png", "--overwrite")
    assert "img0" not in line
    # nothing written, not even the output that did not clash
    assert _bytes(out) == {"img1_saliency.png": b"precious", "img2_saliency.png": b"precious too"}

    assert main(["explain", *map(str, pngs), "--model", "demo", "--method", "saliency", "--out", str(out),
                 "--overwrite"]) == 0
    written = _bytes(out)
    assert sorted(written) == ["img0_saliency.png", "img1_saliency.png", "img2_saliency.png"]
    assert written["img1_saliency.png"].startswith(b"\x89PNG")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_same_stem_in_two_folders_gives_two_outputs_and_the_mapping(pngs, tmp_path, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    (tmp_path / "a" / "x.png").write_bytes(pngs[0].read_bytes())
    (tmp_path / "b" / "x.png").write_bytes(pngs[1].read_bytes())
    out = tmp_path / "out"
    args = ["explain", str(tmp_path / "b" / "x.png"), str(tmp_path / "a" / "x.png"), "--model", "demo",
            "--method", "gradcam", "--out", str(out)]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_x_gradcam.png", "b_x_gradcam.png"]
    assert f"{tmp_path / 'a' / 'x.png'} -> a_x_*" in stdout and f"{tmp_path / 'b' / 'x.png'} -> b_x_*" in stdout
    # each file holds its own input's explanation: the two differ
    assert _bytes(out)["a_x_gradcam.png"] != _bytes(out)["b_x_gradcam.png"]


def test_output_names_are_stable_and_unique():
    a, b, c = Path("p/a/x.png"), Path("p/b/x.png"), Path("q/x.jpg")
    assert output_names([a, b]) == output_names([b, a])[::-1] == ["a_x", "b_x"]
    assert output_names([Path("d/x.png"), Path("d/x.jpg")]) == ["x_png", "x_jpg"]
    assert len(set(output_names([a, b, c]))) == 3
    assert output_names([Path("u/y.png"), Path("z.png")]) == ["y", "z"]


def test_never_writes_over_an_input_even_with_overwrite(pngs, tmp_path, capsys):
    # The second run over a folder that already holds outputs: img0's output is an input of this run.
    folder = pngs[0].parent
    Image.open(pngs[1]).save(folder / "img0_saliency.png")
    before = _bytes(folder)
    rc = main(["explain", str(pngs[0]), str(folder / "img0_saliency.png"), "--model", "demo", "--method",
               "saliency", "--out", str(folder), "--overwrite"])
    one_line_error(rc, capsys.readouterr().err, "refusing to write over input", "img0_saliency.png")
    assert _bytes(folder) == before


def test_truncated_image_in_the_middle_stops_before_the_first_output(pngs, tmp_path, capsys):
    data = pngs[1].read_bytes()
    pngs[1].write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    rc = main(["explain", *map(str, pngs), "--model", "demo", "--method", "saliency", "--out", str(out),
               "--batch-size", "1"])
    one_line_error(rc, capsys.readouterr().err, str(pngs[1]))
    assert not out.exists() or not list(out.iterdir())


class _DiesWhileWriting(Image.Image):
    """A real PIL image whose PNG encoder is interrupted half-way (as by Ctrl-C or a full disk)."""

    def save(self, fp, format=None, **params):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n half a picture")
        raise KeyboardInterrupt


def test_png_write_is_atomic(tmp_path):
    target = tmp_path / "pic.png"
    render.save_png(np.zeros((4, 4, 3), np.uint8), target)
    old = target.read_bytes()
    dying = _DiesWhileWriting()
    dying.__dict__.update(Image.new("RGB", (4, 4)).__dict__)
    with pytest.raises(KeyboardInterrupt):
        render.save_png(dying, target)
    assert target.read_bytes() == old  # the old picture is whole
    assert [p.name for p in tmp_path.iterdir()] == ["pic.png"]  # no temporary file left
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "new.csv") as tmp:
        tmp.write_text("x,y\n1,")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["pic.png"]
    mode = target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


def test_embed_refuses_the_csv_beside_the_picture(tmp_path, capsys):
    (tmp_path / "p.csv").write_text("mine")
    rc = main(["embed", "--model", "demo", "--out", str(tmp_path / "p.png"), "--n", "5", "--method", "pca"])
    one_line_error(rc, capsys.readouterr().err, "p.csv", "--overwrite")
    assert (tmp_path / "p.csv").read_text() == "mine" and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("command", [["filters"], ["units", "--model", "demo-mlp"]])
def test_inspect_pictures_refuse_existing_files(tmp_path, capsys, command):
    target = tmp_path / "k.png"
    target.write_bytes(b"mine")
    args = [*command, "--out", str(target)] + ([] if "--model" in command else ["--model", "demo"])
    one_line_error(main(args), capsys.readouterr().err, "k.png", "--overwrite")
    assert target.read_bytes() == b"mine"
    assert main([*args, "--overwrite"]) == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_demo_and_detector_refuse_existing_files(pngs, tmp_path, capsys):
    (tmp_path / "demo_grid.png").write_bytes(b"mine")
    one_line_error(main(["demo", "--out", str(tmp_path), "--n", "1"]), capsys.readouterr().err, "demo_grid.png")
    (tmp_path / "img0_box3_gradcam.png").write_bytes(b"mine")
    rc = main(["explain", str(pngs[0]), "--model", "demo-detector", "--target", "detection", "--out", str(tmp_path)])
    one_line_error(rc, capsys.readouterr().err, "img0_box3_gradcam.png")
    assert (tmp_path / "img0_box3_gradcam.png").read_bytes() == b"mine"


def test_plan_lists_many_clashes_briefly(tmp_path):
    plan = OutputPlan()
    for i in range(12):
        (tmp_path / f"{i}.png").write_bytes(b"")
        plan.add(tmp_path / f"{i}.png")
    with pytest.raises(Exception, match="12 output file.*and 4 more"):
        plan.check()


def test_run_refuses_an_out_folder_inside_the_data_folder(tmp_path, capsys):
    data = tmp_path / "photos" / "cat"
    data.mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(data / "a.png")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for out in (tmp_path / "photos", tmp_path / "photos" / "runs"):
        rc = main(["run", "--model", "demo", "--data", str(tmp_path / "photos"), "--out", str(out), "--quiet"])
        one_line_error(rc, capsys.readouterr().err, "inside --data")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_evaluate_refuses_an_existing_report_before_any_work(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.csv").write_text("mine\n")
    rc = main(["evaluate", "--model", "demo", "--n", "3", "--methods", "gradcam", "--metrics", "deletion",
               "--out", str(out)])
    one_line_error(rc, capsys.readouterr().err, "summary.csv", "--overwrite")
    assert (out / "summary.csv").read_text() == "mine\n" and sorted(p.name for p in out.iterdir()) == ["summary.csv"]
