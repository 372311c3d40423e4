"""Files the CLI writes: planned before any work, never over an input, never half-written.

Every command that writes files follows the same rules:

1. The output paths are planned before the model runs (:class:`OutputPlan`). A planned
   path that already exists is refused, listing every clash, unless ``--overwrite``;
   a planned path that *is* one of the inputs is refused whatever the flags.
2. Output names are unique: inputs that share a stem (``a/x.png``, ``b/x.png``) are
   named from their path relative to the inputs' common folder (``a_x``, ``b_x``), a
   name that does not depend on the order of the inputs (:func:`output_names`).
3. Every file is written under a temporary name in the same folder, then renamed over
   the final name (:func:`atomic_path`): an interrupt or a full disk never leaves a
   truncated PNG or CSV, and a file being replaced stays whole until the new one is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["OutputPlan", "atomic_path", "output_names", "write_text"]

_MAX_LISTED = 8


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp gives 0600)


def _key(path: Path) -> str:
    """A comparison key for a path that may not exist yet: resolved, case-folded where the OS folds."""
    return os.path.normcase(os.path.realpath(path))


def output_names(paths: Sequence[Path]) -> list[str]:
    """One output name per input, unique, independent of the inputs' order.

    The stem when it is unique among the inputs; else the stem prefixed by the fewest
    trailing folder names that tell the clashing inputs apart, joined by ``_``
    (``a/x.png``, ``b/x.png`` -> ``a_x``, ``b_x``); inputs in one folder that differ by
    suffix (``x.png``, ``x.jpg``) keep it (``x_png``, ``x_jpg``). The same file given
    twice gets one name (its outputs are the same).
    """
    paths = [Path(p) for p in paths]
    by_stem: dict[str, list[Path]] = {}
    for p in paths:
        by_stem.setdefault(p.stem, []).append(p)
    names: dict[Path, str] = {}
    for stem, group in by_stem.items():
        distinct = list(dict.fromkeys(Path(os.path.abspath(p)) for p in group))
        if len(distinct) == 1:
            for p in group:
                names[p] = stem
            continue
        depth = max(len(p.parent.parts) for p in distinct)
        chosen: dict[Path, str] = {}
        for k in range(1, depth + 1):  # the fewest trailing folder names that tell the inputs apart
            trial = {p: "_".join(p.parent.parts[-k:] + (p.stem,)).lstrip("/_") for p in distinct}
            if len(set(trial.values())) == len(distinct):
                chosen = trial
                break
        if not chosen:  # same folder, different suffixes (x.png, x.jpg): keep the suffix
            chosen = {p: f"{p.stem}_{p.suffix.lstrip('.')}" for p in distinct}
            if len(set(chosen.values())) != len(distinct):
                chosen = {p: "_".join(p.parts).lstrip("/_").replace(".", "_") for p in distinct}
        for p in group:
            names[p] = chosen[Path(os.path.abspath(p))]
    return [names[p] for p in paths]


class OutputPlan:
    """The files a command will write, checked before any work.

    Parameters
    ----------
    inputs:
        The input files (never written, whatever the flags).
    overwrite:
        Allow replacing existing files (``--overwrite``).
    """

    def __init__(self, inputs: Iterable[str | os.PathLike[str]] = (), overwrite: bool = False) -> None:
        self.inputs = {_key(Path(p)): Path(p) for p in inputs}
        self.overwrite = overwrite
        self.paths: list[Path] = []
        self._patterns: list[tuple[Path, str]] = []

    def add(self, path: str | os.PathLike[str]) -> Path:
        """Plan the file ``path``; returns it as a Path."""
        p = Path(path)
        self.paths.append(p)
        return p

    def add_pattern(self, folder: str | os.PathLike[str], pattern: str) -> None:
        """Plan files whose exact names are known only later (e.g. one per detected box): ``folder/pattern`` (a glob)."""
        self._patterns.append((Path(folder), pattern))

    def clashes(self) -> tuple[list[Path], list[Path]]:
        """``(outputs that are inputs, outputs that already exist)``."""
        onto_inputs = [p for p in self.paths if _key(p) in self.inputs]
        existing = [p for p in self.paths if p.exists() and _key(p) not in self.inputs]
        for folder, pattern in self._patterns:
            if folder.is_dir():
                for p in sorted(folder.glob(pattern)):
                    (onto_inputs if _key(p) in self.inputs else existing).append(p)
        seen: set[str] = set()
        dup = [p for p in self.paths if _key(p) in seen or seen.add(_key(p))]  # type: ignore[func-returns-value]
        if dup:  # two outputs with one name: a bug in the caller's naming, never a silent loss
            raise InputError(f"two outputs would be written to {dup[0]}; rename one of the inputs.")
        return onto_inputs, existing

    def check(self) -> None:
        """Raise :class:`InputError` naming the clashes (outputs onto inputs; existing files without ``overwrite``)."""
        onto_inputs, existing = self.clashes()
        if onto_inputs:
            raise InputError(
                f"refusing to write over input file(s): {_listing(onto_inputs)}; choose another --out folder."
            )
        if existing and not self.overwrite:
            raise InputError(
                f"{len(existing)} output file(s) already exist: {_listing(existing)}; pass --overwrite to replace "
                "them, or choose another --out."
            )


def _listing(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_MAX_LISTED])
    return shown + (f" and {len(paths) - _MAX_LISTED} more" if len(paths) > _MAX_LISTED else "")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """``with atomic_path(p) as tmp:`` write to ``tmp``; on success it is renamed to ``p``.

    The temporary file lives in ``p``'s folder (a rename within one file system is
    atomic); on any error, Ctrl-C included, it is removed and ``p`` is untouched.
    Parent folders are created.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    try:
        os.chmod(tmp, _FILE_MODE)
        yield Path(tmp)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | os.PathLike[str], text: str, **open_args: Any) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", **open_args) as f:
        f.write(text)
    return Path(path)
