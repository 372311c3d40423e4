"""``gradsight serve``: the local web viewer and HTTP API (see docs/serve.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InputError

__all__ = ["add_parser", "run"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_parser(subs: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command to the ``gradsight`` subparsers."""
    sv = subs.add_parser(
        "serve", parents=parents, help="explore explanations in the browser; an HTTP API for other programs",
        description="Load the model once and serve a page to explain images interactively (methods, layers, "
                    "classes, colormap, opacity, comparisons) and browse a data-set run, plus a JSON API "
                    "documented at /docs. Binds 127.0.0.1 unless --host is given.",
    )
    sv.add_argument("--data", metavar="DIR", help="a folder of images to pick from (default: the bundled demo images)")
    sv.add_argument("--run", dest="run_dir", metavar="DIR", help="the --out folder of a data-set run to browse")
    sv.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default: 127.0.0.1, this machine only); another host is reachable from "
                         "the network: a warning is printed")
    sv.add_argument("--open", action="store_true", help="open the page in the default web browser")
    sv.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB", help="largest image file (default: 20)")
    sv.add_argument("--max-megapixels", type=float, default=40.0, metavar="MP",
                    help="largest image, width x height in millions (default: 40)")
    sv.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Start the server; returns when it is stopped (Ctrl+C)."""
    import socket
    import threading
    import webbrowser
    from pathlib import Path

    import numpy as np

    try:
        import uvicorn

        from ..serve import Limits, RunDir, Viewer, create_app
    except ImportError as exc:
        raise InputError(f"gradsight serve needs its extra ({exc}); pip install 'gradsight[serve]'.") from None
    from ..models import load_model

    if args.host not in LOCAL_HOSTS:  # said first, before anything can fail
        print(f"gradsight: warning: serving on {args.host}, reachable from other machines: anyone who can connect "
              "can run the model and read the --data and --run folders. Use the default 127.0.0.1 unless you "
              "mean it.", file=sys.stderr)
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port must be in 0..65535; got {args.port}")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise InputError("--max-upload-mb and --max-megapixels must be positive")
    if args.data is not None and not Path(args.data).is_dir():
        raise InputError(f"--data {args.data} is not a folder")
    limits = Limits(max_bytes=int(args.max_upload_mb * 2**20), max_pixels=int(args.max_megapixels * 1e6))
    run_dir = RunDir(args.run_dir) if args.run_dir is not None else None  # a bad folder fails before the model loads
    model, info = load_model(args.model, weights=args.weights, trust_pickle=args.trust_pickle,
                             framework=args.framework)
    viewer = Viewer(model, info)
    app = create_app(viewer, data=args.data, run=run_dir, limits=limits)
    # One backward pass now, so the first person's request does not pay for the framework's warm-up;
    # a model that cannot be differentiated at all fails here, before the URL is printed.
    viewer.explain(np.zeros((viewer.size, viewer.size, 3), np.uint8), "warm-up", "saliency")

    port = args.port
    if port == 0:
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as s:
            s.bind((args.host, 0))
            port = s.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/"
    print(f"gradsight serve: {info.description} at {url} (API docs: {url}docs; Ctrl+C stops)", flush=True)
    if args.open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port, log_level="warning", access_log=False))
    server.run()
