"""``gradsight serve`` used as a person uses it: a real uvicorn server (started by the CLI) driven by a
real headless Chromium through Playwright.

The checks read the page's own canvas pixels: the picture changes when the method, the layer,
the class, the colormap or the opacity changes, and it equals the overlay the API computes.
Set GRADSIGHT_SCREENSHOTS=DIR to keep screenshots of the page (docs/serve.png comes from here).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from gradsight.demo.shapes import generate
from serve_fixtures import N_RUN, RUN_TRUTH, write_images, write_run

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """Debian's chromium; installed with apt-get when missing and the tests run as root (CI images)."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True,
                       timeout=1200)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("these tests need Chromium: apt-get install chromium (Debian/Ubuntu), or run 'make test' as root")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], host: str = "127.0.0.1") -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gradsight", "serve", "--model", "demo", "--port", str(port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gradsight serve exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("gradsight serve did not answer within 90 s")


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    write_images(root / "data")
    return root, root / "data", write_run(root / "run", root / "run_images")


@pytest.fixture(scope="module")
def server(folders):
    root, data, run = folders
    proc, url = _start(["--data", str(data), "--run", str(run)])
    yield url
    out, _ = _stop(proc)
    assert f"at {url}/" in out  # the CLI printed the URL


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("requestfinished", lambda r: problems.append(f"{r.method} {r.url} -> {r.response().status}: "
                                                       f"{r.post_data} {r.response().text()[:300]}")
          if r.response() is not None and r.response().status >= 400 else None)
    pg.problems = problems
    yield pg
    context.close()


def _pixels(page, selector: str = "#view") -> np.ndarray:
    d = page.evaluate("""(sel) => { const c = document.querySelector(sel);
        return {w: c.width, h: c.height, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)}; }""",
                      selector)
    return np.array(d["data"], np.uint8).reshape(d["h"], d["w"], 4)


def _renders(page) -> int:
    return int(page.evaluate("() => Number(document.body.dataset.renders || 0)"))


def _wait_render(page, before: int) -> None:
    # ... and no request in flight: a cached answer to a superseded request (a blur's 'change' event
    # on the previous input) can draw first; the page drops late answers, the test must wait for the last.
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {before} && "
                           "!document.body.dataset.busy", timeout=30_000)


def _changed(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the RGB pixels (different shapes count as changed)."""
    if a.shape != b.shape:
        return 255.0
    return float(np.abs(a[..., :3].astype(np.int16) - b[..., :3].astype(np.int16)).mean())


def _png_file(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def _shot(page, name: str) -> None:
    folder = os.environ.get("GRADSIGHT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_explain_page_reacts_to_every_control(page, server, tmp_path):
    page.goto(server + "/")
    _wait_render(page, 0)
    assert page.locator(".thumbs button").count() == 4
    assert page.locator("#view-explain").is_visible() and not page.locator("#view-run").is_visible()
    first = _pixels(page)
    assert first.shape == (64, 64, 4)
    # the canvas shows what the API computes: the library's overlay at opacity 0.5
    api = httpx.post(f"{server}/api/explain", json={"image_ref": "data/img_0.png", "method": "gradcam"}).json()
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(api["overlay_png"]))))
    assert np.abs(first[..., :3].astype(np.int16) - overlay).max() <= 2
    page.locator("#compare-pick input[value=saliency]").check()
    page.locator("#compare-pick input[value=guided_backprop]").check()
    page.wait_for_function("() => document.querySelectorAll('#compare canvas').length === 2 && "
                           "[...document.querySelectorAll('#compare figcaption')].every(f => f.textContent.includes('·'))")
    page.hover("#view", position={"x": 150, "y": 170})
    _shot(page, "serve.png")

    # upload a non-square image
    big = np.asarray(Image.fromarray(generate(3, seed=99).images[2]).resize((96, 80)))
    n = _renders(page)
    page.set_input_files("#file", str(_png_file(tmp_path / "upload.png", big)))
    _wait_render(page, n)
    uploaded = _pixels(page)
    assert uploaded.shape == (80, 96, 4)

    # method
    n = _renders(page)
    page.select_option("#method", "saliency")
    _wait_render(page, n)
    saliency = _pixels(page)
    assert _changed(uploaded, saliency) > 1.0
    assert page.locator("#layer").is_disabled()

    # a method's own options: SmoothGrad with 4 samples, then seed 7
    n = _renders(page)
    page.select_option("#method", "smoothgrad")
    _wait_render(page, n)
    default = _pixels(page)
    assert page.locator("#options input[data-option=samples]").get_attribute("placeholder") == "50"
    n = _renders(page)
    page.locator("#options input[data-option=samples]").fill("4")
    page.locator("#options input[data-option=samples]").dispatch_event("change")
    _wait_render(page, n)
    four = _pixels(page)
    n = _renders(page)
    page.locator("#options input[data-option=seed]").fill("7")
    page.locator("#options input[data-option=seed]").dispatch_event("change")
    _wait_render(page, n)
    assert _changed(default, four) > 0.5 and _changed(four, _pixels(page)) > 0.5

    # layer
    n = _renders(page)
    page.select_option("#method", "gradcam")
    _wait_render(page, n)
    auto = _pixels(page)
    assert "(auto)" in page.locator("#layer option").first.inner_text() or "relu4" in page.locator("#layer").inner_text()
    n = _renders(page)
    page.select_option("#layer", "conv3")
    _wait_render(page, n)
    assert "at conv3" in page.locator("#explained").inner_text()
    conv3 = _pixels(page)
    assert _changed(auto, conv3) > 1.0

    # class: click the second of the top-5
    before_class = page.locator("#explained").inner_text()
    n = _renders(page)
    page.locator("#preds li").nth(1).locator("button").click()
    _wait_render(page, n)
    assert page.locator("#explained").inner_text() != before_class
    other_class = _pixels(page)
    assert _changed(conv3, other_class) > 1.0

    # colormap and opacity (opacity redraws without asking the server)
    n = _renders(page)
    page.select_option("#cmap", "gray")
    _wait_render(page, n)
    gray = _pixels(page)
    assert _changed(other_class, gray) > 1.0
    n = _renders(page)
    page.locator("#opacity").fill("0.9")
    page.wait_for_function("() => document.querySelector('#opacity-value').textContent === '0.90'")
    stronger = _pixels(page)
    assert _changed(gray, stronger) > 1.0 and _renders(page) == n

    # the value under the pointer: the heat map's value at that pixel of the image
    page.hover("#view", position={"x": 200, "y": 150})
    value = page.locator("#value").inner_text()
    assert "heat" in value and "attribution" in value
    body = {"image_ref": page.evaluate("() => state.ref"), "method": "gradcam", "layer": "conv3",
            "target": int(page.locator("#preds button.active").get_attribute("data-cls"))}
    heat = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        httpx.post(f"{server}/api/explain", json=body).json()["heatmap_png"]))))
    xy, shown = value.split(": heat ")
    x, y = (int(v) for v in xy.strip("()").split(","))
    assert abs(x - 200 / 384 * 96) <= 1.5 and abs(y - 150 / 320 * 80) <= 1.5  # the canvas is drawn 384x320
    assert float(shown.split()[0]) == pytest.approx(heat[y, x] / 255, abs=1e-3)

    # side-by-side comparison of two methods (picked at the start; they follow the image and the class)
    page.wait_for_function("() => [...document.querySelectorAll('#compare canvas')].map(c => c.width).join() === '96,96' && "
                           "[...document.querySelectorAll('#compare figcaption')].every(f => f.textContent.includes('·'))")
    a, b = _pixels(page, "#compare canvas[data-method=saliency]"), _pixels(page, "#compare canvas[data-method=guided_backprop]")
    assert a.shape == b.shape == (80, 96, 4) and _changed(a, b) > 1.0

    # download the current picture
    with page.expect_download() as info:
        page.click("#download")
    saved = tmp_path / "download.png"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "upload_gradcam.png"
    got = np.asarray(Image.open(saved).convert("RGBA"))
    assert np.array_equal(got, _pixels(page))

    # drag and drop a file onto the drop zone
    buffer = io.BytesIO()
    Image.fromarray(generate(1, seed=5).images[0]).save(buffer, format="PNG")
    dropped = base64.b64encode(buffer.getvalue()).decode()
    n = _renders(page)
    page.evaluate("""(b64) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer(); dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); }""",
                  dropped)
    _wait_render(page, n)
    assert _pixels(page).shape == (64, 64, 4)
    assert page.problems == [], "\n".join(page.problems)


def test_run_browser_filters_opens_and_plots(page, server):
    page.goto(server + "/")
    _wait_render(page, 0)
    page.click("#tab-run")
    assert page.locator("#view-run").is_visible() and not page.locator("#view-explain").is_visible()
    grid = page.locator("#run-grid button")
    assert grid.count() == N_RUN
    page.select_option("#run-correct", "false")
    wrong = [i for i, (lab, pred, _) in RUN_TRUTH.items() if lab != pred]
    page.wait_for_function(f"() => document.querySelectorAll('#run-grid button').length === {len(wrong)}")
    assert [int(grid.nth(k).get_attribute("data-id")) for k in range(grid.count())] == wrong
    page.select_option("#run-correct", "")
    page.select_option("#run-sort", "confidence")
    page.select_option("#run-order", "desc")
    order = sorted(RUN_TRUTH, key=lambda i: -RUN_TRUTH[i][2])
    page.wait_for_function(f"() => document.querySelector('#run-grid button').dataset.id === '{order[0]}'")
    assert [int(grid.nth(k).get_attribute("data-id")) for k in range(grid.count())] == order
    page.wait_for_function("() => [...document.querySelectorAll('#run-grid img')].every(i => i.complete && i.naturalWidth === 64)")

    grid.nth(0).click()
    page.wait_for_function(f"() => document.querySelector('#run-detail h2')?.textContent.startsWith('image {order[0]}')")
    page.wait_for_function("() => [...document.querySelectorAll('#run-detail img')].length === 3 && "
                           "[...document.querySelectorAll('#run-detail img')].every(i => i.complete && i.naturalWidth === 64)")
    circles = page.locator("#embedding circle")
    assert circles.count() == N_RUN
    page.locator("#embedding circle[data-id='4']").click()
    page.wait_for_function("() => document.querySelector('#run-detail h2').textContent.startsWith('image 4:')")
    assert "true cross, predicted circle" in page.locator("#run-detail h2").inner_text()
    _shot(page, "serve_run.png")
    n = _renders(page)
    page.get_by_role("button", name="Explain live").click()
    _wait_render(page, n)
    assert page.locator("#view-explain").is_visible()
    assert page.problems == [], "\n".join(page.problems)


def test_cli_warns_about_a_non_local_host_and_refuses_bad_folders(tmp_path):
    # 127.0.0.2 is not the default host: the warning comes first, then the bad --data ends the command.
    proc = subprocess.run([sys.executable, "-m", "gradsight", "serve", "--model", "demo", "--host", "127.0.0.2",
                           "--data", str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "warning: serving on 127.0.0.2" in proc.stderr
    assert f"error: --data {tmp_path / 'missing'} is not a folder" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "gradsight", "serve", "--model", "demo", "--run", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is not a gradsight run folder" in proc.stderr
    assert "warning" not in proc.stderr
