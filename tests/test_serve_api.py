"""The HTTP API of ``gradsight serve``: numbers against hand-written references, errors, safety, concurrency.

The app runs in-process (FastAPI's TestClient / httpx's ASGI transport) on the real demo
model; tests/test_serve_browser.py drives a real uvicorn server from Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os

import httpx
import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image

from gradsight.demo.runner import demo_images
from gradsight.demo.shapes import MEAN, STD, generate
from gradsight.models import ModelInfo, load_model
from gradsight.serve import Limits, Viewer, create_app
from serve_fixtures import N_RUN, RUN_TRUTH, heat_for, write_images, write_run


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.fixture(scope="module")
def demo():
    model, info = load_model("demo")
    return model, info


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    data = root / "data"
    write_images(data)
    (root / "secret.txt").write_text("not for you")
    os.symlink(root / "secret.txt", data / "link.png")  # a symlink out of the folder is not served
    run = write_run(root / "run", root / "run_images")
    return root, data, run


@pytest.fixture(scope="module")
def client(demo, folders):
    root, data, run = folders
    app = create_app(Viewer(*demo), data=data, run=run)
    with TestClient(app) as c:
        yield c


def _image(seed: int = 3, index: int = 0) -> np.ndarray:
    return generate(index + 1, seed=seed).images[index]


def _reference_batch(pixels: np.ndarray) -> torch.Tensor:
    """The demo preprocessing written out: (x / 255 - mean) / std, NCHW (the image is already 64x64)."""
    x = (pixels.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())


# --------------------------------------------------------------------------- numbers


def test_model_description_lists_the_layers_a_forward_hook_sees(client, demo):
    model, _ = demo
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.append((n, tuple(o.shape))))
             for n, m in model.named_modules() if n and not list(m.children())]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    d = client.get("/api/model").json()
    assert [(r["name"], tuple(r["shape"])) for r in d["layers"]] == seen
    spatial = [n for n, s in seen if len(s) == 4 and s[2] * s[3] > 1]
    assert d["auto_layer"] == spatial[-1] == "relu4"
    assert [m["name"] for m in d["methods"]] == list(__import__("gradsight").METHODS)
    assert d["classes"] == ["circle", "square", "triangle", "star", "cross"]
    assert d["input_size"] == [64, 64] and d["framework"] == "torch"


def test_gradcam_and_predictions_match_a_hand_written_reference(client, demo):
    model, _ = demo
    pixels = _image()
    r = client.post("/api/explain", json={"image": base64.b64encode(_png(pixels)).decode(), "method": "gradcam",
                                          "target": 2}).json()
    # reference: forward hooks on relu4, Grad-CAM by the paper's formula, bilinear to 64, min-max.
    x = _reference_batch(pixels)
    store = {}
    h = model.relu4.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    logits = model.eval()(x)
    h.remove()
    grad = torch.autograd.grad(logits[0, 2], store["a"])[0]
    cam = F.relu((grad.mean((2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(64, 64), mode="bilinear", align_corners=False)[0, 0].detach().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    heat = _decode(r["heatmap_png"]).astype(np.float64) / 255.0
    assert heat.shape == (64, 64)
    assert np.abs(heat - cam).max() <= 0.6 / 255 + 1e-4
    probs = torch.softmax(logits[0].double(), 0).detach().numpy()
    order = np.argsort(-probs)[:5]
    assert [p["class"] for p in r["predictions"]] == order.tolist()
    np.testing.assert_allclose([p["prob"] for p in r["predictions"]], probs[order], rtol=1e-5)
    assert r["explained"]["class"] == 2 and r["layer"] == "relu4"
    np.testing.assert_allclose(r["explained"]["score"], float(logits[0, 2].detach()), rtol=1e-5)
    # the overlay: 0.5 image + 0.5 jet(heat), at the input's size
    jet = matplotlib.colormaps["jet"](cam)[..., :3] * 255
    overlay = _decode(r["overlay_png"]).astype(np.float64)
    assert overlay.shape == (64, 64, 3)
    assert np.abs(overlay - (0.5 * pixels + 0.5 * jet)).max() <= 2.0


def test_saliency_attributions_are_the_input_gradient(client, demo):
    model, _ = demo
    pixels = _image(index=1)
    r = client.post("/api/explain", json={"image": base64.b64encode(_png(pixels)).decode(), "method": "saliency",
                                          "attributions": True}).json()
    x = _reference_batch(pixels).requires_grad_(True)
    logits = model.eval()(x)
    top = int(logits.argmax())
    (g,) = torch.autograd.grad(logits[0, top], x)
    a = r["attributions"]
    assert a["shape"] == [3, 64, 64] and a["layout"] == "channels_first"
    got = np.array(a["values"], np.float64)
    assert np.abs(got - g[0].numpy()).max() <= 1e-5 * np.abs(g.numpy()).max()
    assert r["explained"]["class"] == top and r["layer"] is None


def test_upload_forms_give_the_same_answer_and_the_cache_serves_repeats(client):
    pixels = _image(seed=4)
    body = _png(pixels)
    as_json = client.post("/api/explain", json={"image": base64.b64encode(body).decode(), "method": "guided_gradcam",
                                                "options": {}}).json()
    form = client.post("/api/explain", files={"image": ("x.png", body, "image/png")},
                       data={"method": "guided_gradcam", "layer": "auto"}).json()
    up = client.post("/api/images", files={"image": ("x.png", body, "image/png")}).json()
    calls = client.get("/api/health").json()["computations"]
    by_ref = client.post("/api/explain", json={"image_ref": up["ref"], "method": "guided_gradcam"}).json()
    assert up["ref"] == f"upload/{as_json['image']['key']}" and (up["width"], up["height"]) == (64, 64)
    for other in (form, by_ref):
        assert other["layer_png"] == as_json["layer_png"] and other["heatmap_png"] == as_json["heatmap_png"]
    assert form["cached"] and by_ref["cached"]
    assert client.get("/api/health").json()["computations"] == calls


def test_pictures_are_at_the_image_size_up_to_2048_pixels(client):
    wide = np.repeat(_image(seed=8), 33, axis=1)[:40]  # 40 x 2112
    r = client.post("/api/explain", json={"image": base64.b64encode(_png(wide)).decode(), "method": "gradcam"}).json()
    assert (r["image"]["width"], r["image"]["height"]) == (2112, 40)
    assert (r["picture"]["width"], r["picture"]["height"]) == (2048, 39)
    for key in ("heatmap_png", "overlay_png", "layer_png"):
        assert _decode(r[key]).shape[:2] == (39, 2048)
    small = client.post("/api/explain", json={"image_ref": "data/img_0.png"}).json()
    assert small["picture"] == {"width": 64, "height": 64} and _decode(small["heatmap_png"]).shape == (64, 64)


def test_images_list_and_files_from_the_data_folder(client, folders):
    _, data, _ = folders
    refs = [im["ref"] for im in client.get("/api/images").json()["images"]]
    assert refs == [f"data/img_{i}.png" for i in range(4)]  # the symlink out of the folder is not listed
    r = client.get("/api/images/data/img_2.png")
    assert r.status_code == 200 and r.content == (data / "img_2.png").read_bytes()
    ok = client.post("/api/explain", json={"image_ref": "data/img_2.png", "method": "gradcam"})
    assert ok.status_code == 200 and ok.json()["image"]["width"] == 64


def test_options_reach_the_method(client):
    a = client.post("/api/explain", json={"image_ref": "data/img_1.png", "method": "smoothgrad",
                                          "options": {"samples": 4, "seed": 1}}).json()
    b = client.post("/api/explain", json={"image_ref": "data/img_1.png", "method": "smoothgrad",
                                          "options": {"samples": 4, "seed": 2}}).json()
    assert a["options"] == {"samples": 4, "seed": 1} and a["heatmap_png"] != b["heatmap_png"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("body, kind", [
    ({"image_ref": "data/img_0.png", "method": "gradcum"}, "UnknownMethodError"),
    ({"image_ref": "data/img_0.png", "method": "gradcam", "layer": "conv9"}, "LayerNotFoundError"),
    ({"image_ref": "data/img_0.png", "target": 7}, "TargetError"),
    ({"image_ref": "data/img_0.png", "target": "dog"}, "TargetError"),
    ({"image_ref": "data/img_0.png", "method": "smoothgrad", "options": {"sample": 3}}, "UnknownOptionError"),
    ({"image_ref": "data/img_0.png", "method": "smoothgrad", "options": {"samples": "many"}}, "InputError"),
    ({"image_ref": "data/img_0.png", "cmap": "jetty"}, "InputError"),
    ({"image": base64.b64encode(b"GIF89a not really").decode()}, "InputError"),
    ({"image": "%%%not base64"}, "InputError"),
    ({"method": "gradcam"}, "InputError"),
    ({"image_ref": "elsewhere/x"}, "InputError"),
])
def test_bad_requests_are_json_400s_with_the_library_message(client, body, kind):
    r = client.post("/api/explain", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == kind and err["status"] == 400 and err["message"]


def test_unknown_layer_error_suggests_close_names(client):
    err = client.post("/api/explain", json={"image_ref": "data/img_0.png", "layer": "relu5"}).json()["error"]
    assert "relu4" in err["message"]


def test_only_image_types_are_accepted(client):
    r = client.post("/api/explain", files={"image": ("x.txt", b"hello", "text/plain")}, data={"method": "gradcam"})
    assert r.status_code == 400 and "only image files" in r.json()["error"]["message"]
    r = client.post("/api/images", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 400
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    r = client.post("/api/images", files={"image": ("x.png", svg, "image/png")})
    assert r.status_code == 400 and r.json()["error"]["type"] == "InputError"


def test_upload_limits_are_checked_from_the_header_before_decoding(demo):
    app = create_app(Viewer(*demo), limits=Limits(max_bytes=200_000, max_pixels=1_000_000))
    with TestClient(app) as c:
        # 2000 x 1000 = 2 MP of zeros compresses to a few KB; the header says it is too big.
        big = _png(np.zeros((1000, 2000, 3), np.uint8))
        truncated = big[:4000]  # only the header and a little data: decoding it in full would fail
        for data in (big, truncated):
            r = c.post("/api/explain", files={"image": ("big.png", data, "image/png")})
            assert r.status_code == 413, r.text
            assert "megapixels" in r.json()["error"]["message"]
        noisy = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
        r = c.post("/api/images", files={"image": ("noise.png", _png(noisy), "image/png")})  # ~270 KB
        assert r.status_code == 413 and "MB" in r.json()["error"]["message"]
        r = c.post("/api/explain", content=b"x" * 400_000, headers={"content-type": "application/json"})
        assert r.status_code == 413  # refused from Content-Length, before the body is read

        def chunks():  # no Content-Length: counted while it streams in
            for _ in range(40):
                yield b"x" * 10_000

        for ctype in ("application/json", "multipart/form-data; boundary=xyz", "image/png"):
            r = c.post("/api/explain" if "image/" not in ctype else "/api/images", content=chunks(),
                       headers={"content-type": ctype})
            assert r.status_code == 413 and r.json()["error"]["type"] == "PayloadTooLarge", (ctype, r.text)
        assert c.get("/api/health").status_code == 200


class _Fragile(torch.nn.Module):
    """A classifier that fails on bright images (a model bug the server must survive)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.mean()) > 0.9:
            raise RuntimeError("the model broke on a bright image")
        return self.fc(self.relu(self.conv(x)).mean((2, 3)))


def test_model_failures_are_500s_and_the_server_keeps_serving():
    info = ModelInfo("torch", "NCHW", 16, "none", ("a", "b", "c"), "a fragile test model")
    with TestClient(create_app(Viewer(_Fragile(), info))) as c:
        white = base64.b64encode(_png(np.full((16, 16, 3), 255, np.uint8))).decode()
        r = c.post("/api/explain", json={"image": white, "method": "gradcam"})
        assert r.status_code == 500
        assert r.json()["error"] == {"type": "ModelFailure", "status": 500,
                                     "message": "RuntimeError: the model broke on a bright image"}
        grey = base64.b64encode(_png(np.full((16, 16, 3), 90, np.uint8))).decode()
        r = c.post("/api/explain", json={"image": grey, "method": "gradcam"})
        assert r.status_code == 200 and r.json()["layer"] == "relu"


# --------------------------------------------------------------------------- path safety


ESCAPES = [
    "..%2fsecret.txt", "%2e%2e/secret.txt", "%2e%2e%2fsecret.txt", "..%5csecret.txt", "%2fetc%2fpasswd",
    "/etc/passwd", "%2F%2Fetc%2Fpasswd", "img_0.png%00.png", "link.png", "sub/..%2f..%2fsecret.txt",
]


@pytest.mark.parametrize("tail", ESCAPES)
def test_data_files_cannot_escape_the_folder(client, tail):
    r = client.get(f"/api/images/data/{tail}")
    assert r.status_code in (400, 404), (tail, r.status_code)
    assert r.json()["error"]["type"] in ("InputError", "NotFound")
    assert b"not for you" not in r.content and b"root:" not in r.content


@pytest.mark.parametrize("ref", ["data/../secret.txt", "data//etc/passwd", "data/%2e%2e/secret.txt",
                                 "data/link.png", "data/C:/Windows/win.ini"])
def test_image_refs_cannot_escape_the_folder(client, ref):
    r = client.post("/api/explain", json={"image_ref": ref})
    assert r.status_code in (400, 404), (ref, r.status_code)


@pytest.mark.parametrize("tail", ["..%2frun.json", "..%2f..%2fsecret.txt", "%2fetc%2fpasswd",
                                  "attributions/..%2f..%2fsecret.txt"])
def test_run_files_cannot_escape_the_folder(client, tail):
    r = client.get(f"/api/run/files/{tail}")
    assert r.status_code in (400, 404) and b"not for you" not in r.content


# --------------------------------------------------------------------------- run browsing


def test_run_summary_filters_and_sorting(client):
    s = client.get("/api/run").json()
    assert s["images"] == N_RUN and s["methods"] == ["gradcam", "saliency"] and s["has_embedding"]
    wrong = [i for i, (lab, pred, _) in RUN_TRUTH.items() if lab != pred]
    assert s["accuracy"] == pytest.approx(1 - len(wrong) / N_RUN)

    def ids(**params):
        return [it["image_id"] for it in client.get("/api/run/images", params=params).json()["items"]]

    assert ids(correct=False) == wrong
    assert ids(cls=3) == [i for i, (lab, pred, _) in RUN_TRUTH.items() if 3 in (lab, pred)]
    assert ids(label=0) == [0, 5] and ids(predicted=0) == [0, 4, 5]
    assert ids(sort="confidence", order="desc") == sorted(RUN_TRUTH, key=lambda i: -RUN_TRUTH[i][2])
    assert ids(min_conf=0.6, max_conf=0.95) == [i for i, t in RUN_TRUTH.items() if 0.6 <= t[2] <= 0.95]
    assert ids(sort="confidence", limit=2, offset=1) == sorted(RUN_TRUTH, key=lambda i: RUN_TRUTH[i][2])[1:3]
    r = client.get("/api/run/images", params={"sort": "colour"})
    assert r.status_code == 400 and "sort" in r.json()["error"]["message"]
    item = client.get("/api/run/images/4").json()
    assert item["label_name"] == "cross" and item["predicted_name"] == "circle" and item["correct"] is False
    assert set(item["methods"]) == {"gradcam", "saliency"} and "store" not in item["methods"]["gradcam"]
    assert client.get("/api/run/images/99").status_code == 404


def test_run_heat_maps_are_the_saved_arrays(client, folders):
    _, _, run = folders
    heat = heat_for(4, "saliency").astype(np.float64)
    jet = np.floor(matplotlib.colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255 + 0.5)
    got = np.asarray(Image.open(io.BytesIO(client.get("/api/run/images/4/saliency.png?overlay=false").content)))
    assert np.abs(got.astype(np.float64) - jet).max() <= 1
    source = np.asarray(Image.open(run.parent / "run_images" / "img_4.png").convert("RGB")).astype(np.float64)
    over = np.asarray(Image.open(io.BytesIO(client.get("/api/run/images/4/saliency.png?alpha=0.3").content)))
    assert np.abs(over - (0.7 * source + 0.3 * jet)).max() <= 2.0
    src = np.asarray(Image.open(io.BytesIO(client.get("/api/run/images/4/source.png").content)))
    assert np.array_equal(src, source.astype(np.uint8))
    assert client.get("/api/run/images/4/gradcum.png").status_code == 404
    live = client.post("/api/explain", json={"image_ref": "run/4", "method": "gradcam"})
    assert live.status_code == 200


def test_run_embedding_and_files(client, folders):
    _, _, run = folders
    points = client.get("/api/run/embedding").json()["points"]
    assert [p["image_id"] for p in points] == list(range(N_RUN))
    np.testing.assert_allclose([p["x"] for p in points], np.cos(np.arange(N_RUN)), rtol=1e-6)
    assert points[1]["correct"] is False and points[1]["label"] == 1
    assert client.get("/api/run/files/summary.md").text == "# run\n"


def test_without_run_or_data_the_endpoints_say_so(demo):
    with TestClient(create_app(Viewer(*demo))) as c:
        r = c.get("/api/run")
        assert r.status_code == 404 and "--run" in r.json()["error"]["message"]
        refs = [im["ref"] for im in c.get("/api/images").json()["images"]]
        assert refs == [f"demo/{i}" for i in range(10)]
        shown = np.asarray(Image.open(io.BytesIO(c.get("/api/images/demo/3").content)))
        assert np.array_equal(shown, demo_images(10).images[3])
        r = c.post("/api/explain", json={"image_ref": "demo/3"}).json()
        assert r["image"]["ref"] == "demo/3" and r["explained"]["name"] == "star"  # the model gets it right
        assert c.get("/api/images/data/x.png").status_code == 404
        assert c.get("/api/model").json()["sources"] == {"data": False, "run": False, "demo": True}


def test_openapi_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    for path in ("/api/health", "/api/model", "/api/explain", "/api/images", "/api/run/images",
                 "/api/run/embedding"):
        assert path in schema["paths"]
    body = schema["paths"]["/api/explain"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"image", "image_ref", "method", "target", "layer", "options", "attributions"} <= set(
        body["application/json"]["schema"]["properties"])


# --------------------------------------------------------------------------- concurrency


def test_sixteen_concurrent_explains_equal_sequential_ones(demo, folders):
    _, data, _ = folders
    methods = ["saliency", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam", "smoothgrad"]
    bodies = [
        {"image_ref": f"data/img_{k % 4}.png", "method": methods[k % len(methods)], "target": k % 5,
         "attributions": True, **({"options": {"samples": 8}} if methods[k % len(methods)] == "smoothgrad" else {})}
        for k in range(16)
    ]

    async def run(app, concurrent: bool) -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            if concurrent:
                responses = await asyncio.gather(*(c.post("/api/explain", json=b) for b in bodies))
            else:
                responses = [await c.post("/api/explain", json=b) for b in bodies]
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
        return [r.json() for r in responses]

    # a fresh viewer (empty cache) for each run: every request is computed
    seq_viewer, par_viewer = Viewer(*demo), Viewer(*demo)
    seq = asyncio.run(run(create_app(seq_viewer, data=data), concurrent=False))
    par = asyncio.run(run(create_app(par_viewer, data=data), concurrent=True))
    assert par_viewer.calls == seq_viewer.calls == 16
    for a, b in zip(seq, par):
        assert a["explained"] == b["explained"] and a["predictions"] == b["predictions"]
        assert a["heatmap_png"] == b["heatmap_png"] and a["layer_png"] == b["layer_png"]
        assert json.dumps(a["attributions"]) == json.dumps(b["attributions"])


def test_caches_stay_bounded(demo):
    viewer = Viewer(*demo, cache_size=6, image_store=3)
    with TestClient(create_app(viewer)) as c:
        for seed in range(12):
            body = _png(_image(seed=100 + seed))
            ref = c.post("/api/images", files={"image": ("x.png", body, "image/png")}).json()["ref"]
            assert c.post("/api/explain", json={"image_ref": ref, "method": "gradcam"}).status_code == 200
    assert len(viewer.explanations) == 6 and len(viewer.predictions) == 6 and len(viewer.uploads) == 3
    assert viewer.calls == 12
    small = Viewer(*demo, upload_bytes=3 * 64 * 64 * 3 + 10)  # room for three 64x64 images
    for seed in range(5):
        small.uploads.put(str(seed), _image(seed=seed))
    assert len(small.uploads) == 3 and small.uploads.bytes == 3 * 64 * 64 * 3
    assert small.uploads.get("0") is None and small.uploads.get("4") is not None


def test_the_keras_twin_serves_the_same_pictures_as_the_torch_model(demo):
    pytest.importorskip("keras")
    keras_viewer, torch_viewer = Viewer(*load_model("demo", framework="keras")), Viewer(*demo)
    d = keras_viewer.describe()
    assert d["framework"] == "keras" and d["layout"] == "NHWC" and d["auto_layer"] == "relu4"
    assert [r["name"] for r in d["layers"]][-3:] == ["relu4", "gap", "classifier"]
    assert d["layers"][-3]["shape"] == [1, 8, 8, 64]
    pixels = _image(seed=6)
    for method in ("gradcam", "guided_backprop"):
        k = keras_viewer.explain(pixels, "x", method=method, target=1)
        t = torch_viewer.explain(pixels, "x", method=method, target=1)
        for key in ("heatmap_png", "layer_png"):
            assert np.abs(_decode(k[key]).astype(int) - _decode(t[key]).astype(int)).max() <= 2, (method, key)
        np.testing.assert_allclose([p["prob"] for p in k["predictions"]], [p["prob"] for p in t["predictions"]],
                                   atol=1e-5)
        assert k["layer"] == t["layer"]


def test_the_web_stack_loads_only_for_serve():
    import subprocess
    import sys

    code = ("import sys, gradsight, gradsight.cli; gradsight.cli.build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'multipart') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
