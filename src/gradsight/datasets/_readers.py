"""Reader processes of the local engine: parts are decoded ahead of the model, outside its process.

Why processes, and why at the lowest priority. Decoding (PIL) and the generated demo
images are CPU work that largely holds the GIL; reader *threads* in the model's process
compete with the explaining thread for the GIL (each hand-over of the GIL can cost the
model thread a switch interval) and, on a small machine, with the framework's intra-op
threads for the cores. A reader is instead a plain Python child process scheduled as
idle work (Linux ``SCHED_IDLE``; elsewhere ``nice`` +19): it runs on the cores the model
leaves idle and takes next to nothing from a busy one. The job never waits for a reader:
what the readers have not finished when the model needs it, the job reads itself
(``_run_local``).

The protocol is length-prefixed pickles over the child's stdin/stdout (no
``multiprocessing``: it would re-import the user's ``__main__`` script, which need not be
guarded). A reader ends when its stdin closes, so the children go with the job however it
ends (a killed job closes the pipe too), and they inherit no file descriptor (the folder's
lock stays the job's alone). Should a reader fail to start or die, its parts are decoded
in the job's own process, with the same result.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from ._sources import decode_batch

__all__ = ["ReaderPool"]

_HEADER = struct.Struct("<Q")
NICE = 19  # where SCHED_IDLE is missing: the lowest ordinary priority
# A reader lowers its own priority first (idle work on Linux, else the lowest nice), then imports.
_BOOT = f"""
import os
try:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
except (AttributeError, OSError):
    try:
        os.nice({NICE})
    except (AttributeError, OSError):
        pass
from gradsight.datasets._readers import _main
_main()
"""


def _send(fh: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEADER.pack(len(data)))
    fh.write(data)
    fh.flush()


def _receive(fh: IO[bytes]) -> Any:
    head = fh.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("reader pipe closed")
    (size,) = _HEADER.unpack(head)
    data = fh.read(size)
    if len(data) < size:
        raise EOFError("reader pipe closed mid-message")
    return pickle.loads(data)


class ReaderPool:
    """``workers`` reader processes; ``submit(items)`` decodes a part (:func:`decode_batch`) in one of them.

    Parameters
    ----------
    workers: reader processes (each decodes one part at a time).
    root, size, seed: :func:`decode_batch`'s arguments, the same for every part.
    """

    def __init__(self, workers: int, root: str | None, size: int, seed: int) -> None:
        self.args = (root, size, seed)
        self.closing = False
        self.idle: queue.SimpleQueue[subprocess.Popen[bytes] | None] = queue.SimpleQueue()
        self.procs: list[subprocess.Popen[bytes]] = []
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # the folder gradsight is imported from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        for _ in range(max(1, int(workers))):
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, env=env,
                )
            except OSError:  # no interpreter to start (a frozen app): decode in this process
                self.idle.put(None)
                continue
            self.procs.append(proc)
            self.idle.put(proc)
        self.threads = ThreadPoolExecutor(len(self.procs) or 1, thread_name_prefix="gradsight-read")

    def submit(self, items: dict[str, Any]) -> Future[dict[str, Any]]:
        return self.threads.submit(self._decode, items)

    def _decode(self, items: dict[str, Any]) -> dict[str, Any]:
        proc = self.idle.get()
        try:
            if proc is not None and proc.poll() is None:
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    _send(proc.stdin, (items, *self.args))
                    status, value = _receive(proc.stdout)
                except (OSError, EOFError, pickle.PickleError):
                    if self.closing:
                        return {}  # the job has ended: nobody waits for this chunk
                    proc.kill()  # a dead or garbled reader: this chunk and the next ones are read here
                else:
                    if status == "ok":
                        return value
            return decode_batch(items, *self.args)
        finally:
            self.idle.put(proc)

    def close(self) -> None:
        """Stop the readers now and wait for them.

        Whatever they are still reading when the job ends, the job has read itself, and a
        reader holds no file open for writing: killing it loses nothing (an idle-priority
        reader on a busy machine could otherwise take long to finish its chunk).
        """
        self.closing = True
        for proc in self.procs:
            proc.kill()
        self.threads.shutdown(wait=True, cancel_futures=True)
        for proc in self.procs:
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> None:
    """A reader's loop: (items, root, size, seed) in, ("ok", decoded part) or ("error", reason) out."""
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the replies
    while True:
        try:
            items, root, size, seed = _receive(requests)
        except (EOFError, OSError):
            return  # the job closed the pipe (finished, or killed)
        try:
            reply: tuple[str, Any] = ("ok", decode_batch(items, root, size, seed))
        except Exception as exc:  # the job decodes this part itself and reports what fails
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            _send(replies, reply)
        except (BrokenPipeError, OSError):
            return


def _main() -> None:
    try:
        _serve()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the job reports it
        pass
