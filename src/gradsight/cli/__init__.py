"""The ``gradsight`` command line: ``explain``, ``layers``, ``demo``, ``embed``, ``filters``,
``units``, ``weights``.

Exit status: 0 on success, 2 on bad input (a missing or unreadable file, an unknown
method or layer, any :class:`~gradsight.errors.GradsightError`), 1 on an unexpected
error, 130 when interrupted. Errors are one line on stderr
(``gradsight: error: ...``); ``--debug`` shows the traceback instead.

Layout
------
One module per command, plus :mod:`._common` for what commands share (the parser
class, the ``--model`` and ``--debug`` parent parsers, loading the model, reading
images, output paths, one-line error reporting). Bundled models (``demo``,
``demo-detector``, ``demo-mlp``) come from one registry,
:mod:`gradsight.demo.registry`, for every command.

Adding a command
----------------
Write ``cli/<name>.py`` with two functions::

    def add_parser(subs, parents) -> None:
        p = subs.add_parser("<name>", parents=parents, help="...")
        p.add_argument(...)

    def run(args) -> None:
        ...   # raise gradsight.errors.* for bad input: main() prints one line, exit 2

and add one line to :data:`COMMANDS` below: the module name and the shared parent
parsers it takes (``"model"``: ``--model/--weights/--trust-pickle/--framework``;
``"debug"``: ``--debug``). ``parents`` is a list of argparse parsers, so a module
written for ``add_parser(subs, [model, debug])`` drops in unchanged; ``run`` is set as
the default of every parser the module adds (unless it sets its own). Import heavy
things (torch, PIL, the api) inside ``run``: ``gradsight --help`` imports every
command module.

A module written as ``gradsight/cli_<name>.py`` against the old single-file CLI moves
to ``cli/<name>.py`` with its relative imports one level deeper (``from ..errors
import ...``); the helpers it may have used keep their old names here
(``_load``, ``_check_images``, ``_read_image``, ``_stems``, ``_one_line``,
``MIN_PICTURE``, ``DEFAULT_SIZE``), or use :mod:`._common`'s public ones.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._common import DEFAULT_SIZE as DEFAULT_SIZE
from ._common import MIN_PICTURE as MIN_PICTURE
from ._common import PROG, Parser, debug_parent, model_parent, run_reporting_errors
from ._common import check_images as _check_images
from ._common import load as _load
from ._common import one_line as _one_line
from ._common import read_image as _read_image
from ._common import stems as _stems

__all__ = ["main", "build_parser", "COMMANDS"]

# The single-file CLI's helpers, for command modules written against it (see above).
_ = (_check_images, _load, _one_line, _read_image, _stems)

COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("explain", ("model", "debug")),
    ("layers", ("model", "debug")),
    ("demo", ("debug",)),
    ("embed", ("model", "debug")),
    ("filters", ("model", "debug")),
    ("units", ("model", "debug")),
    ("weights", ("model", "debug")),
    ("serve", ("model", "debug")),
    ("run", ("model", "debug")),
    ("evaluate", ("model", "debug")),
)
"""The commands in ``--help`` order: ``(module in gradsight.cli, parent parsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gradsight`` command."""
    from .. import __version__

    shared = {"model": model_parent(), "debug": debug_parent()}
    parser = Parser(
        prog=PROG,
        description="See why a CNN made a decision: saliency, SmoothGrad, deconvnet, guided backprop, "
                    "Grad-CAM and guided Grad-CAM as pictures.",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options. Start with '{PROG} demo'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback on errors")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, parents in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        before = set(subs.choices)
        module.add_parser(subs, [shared[p] for p in parents])
        for added in set(subs.choices) - before:  # the command's parser(s), whatever it named them
            if subs.choices[added].get_default("run") is None:
                subs.choices[added].set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gradsight`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return run_reporting_errors(args.run, args, debug=bool(getattr(args, "debug", False)))
