"""The output folder at the edge, replaced as a whole.

A run writes into a private staging folder beside the output folder (``.OUT.staging-<pid>``) and, only
when everything succeeded, swaps it in: the old folder is renamed ``OUT.previous``, the staging folder
``OUT``, and the previous one removed. A reader sees the old output or the new one, never a mix, and no
file of an earlier run survives. A lock file (``.OUT.lock``, held with ``flock`` so that a killed run
releases it) keeps two runs from writing the same folder; staging folders of runs that no longer
exist are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path

from pipeline.errors import OutputError

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_writable(output: Path) -> None:
    """Raise an OutputError, before any compute, if a run could not replace ``output``."""
    output = Path(output).absolute()
    if output.exists() and not output.is_dir():
        raise OutputError("the output path is a file, not a folder; choose a folder with --output", output)
    parent = next((p for p in (output, *output.parents) if p.exists()), None)
    if parent is not None and parent != output:
        if not parent.is_dir():
            raise OutputError(f"cannot create the output folder: {parent} is a file", output)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"cannot create the output folder: {parent} is not writable", output)
    if output.exists():
        if not os.access(output.parent, os.W_OK | os.X_OK):
            raise OutputError(
                "the folder that holds the output folder is not writable (the output is replaced as a whole)",
                output.parent,
            )
        for folder, _, _ in os.walk(output):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise OutputError(
                    "not writable, so the previous output cannot be replaced; fix the permissions "
                    "(chmod -R u+w) or choose another --output",
                    folder,
                )


class Staging:
    """A private staging folder beside the output folder; ``commit`` swaps it in as the output folder."""

    def __init__(self, output: Path):
        self.output = Path(output).absolute()
        check_writable(self.output)
        parent = self.output.parent
        self._lock_path = parent / f".{self.output.name}.lock"
        self.root = parent / f".{self.output.name}.staging-{os.getpid()}"
        self.previous = parent / f"{self.output.name}.previous"
        self._lock: int | None = None
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._lock = self._acquire()
            self._clean_up()
            if self.root.exists():
                shutil.rmtree(self.root)
            self.root.mkdir()
        except OSError as e:
            self._release()
            raise OutputError(f"cannot write beside the output folder: {e.strerror}", parent) from None

    def _acquire(self) -> int:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise OutputError(
                f"another run is writing this output folder ({holder}); wait for it to finish or "
                "choose another --output",
                self.output,
            ) from None
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        return fd

    def _clean_up(self) -> None:
        """Staging folders of runs that died, and a swap cut short (restore the previous output)."""
        for stale in self.output.parent.glob(f".{self.output.name}.staging-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                shutil.rmtree(stale, ignore_errors=True)
        if self.previous.exists():
            if not self.output.exists():
                os.replace(self.previous, self.output)
            else:
                shutil.rmtree(self.previous, ignore_errors=True)

    def path(self, relative: str) -> Path:
        p = self.root / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def folder(self, relative: str) -> Path:
        p = self.root / relative
        p.mkdir(parents=True, exist_ok=True)
        return p

    def files(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def commit(self) -> None:
        """Swap the staging folder in as the output folder (two renames); then drop the previous output."""
        moved = False
        try:
            if self.output.exists():
                os.replace(self.output, self.previous)
                moved = True
            os.replace(self.root, self.output)
        except OSError as e:
            if moved and not self.output.exists():  # put the old output back: a reader sees it as it was
                os.replace(self.previous, self.output)
            raise OutputError(f"cannot replace the output folder: {e.strerror}", self.output) from None
        finally:
            self._release()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.previous)
        if self.previous.exists():
            log.warning("%s: the previous output could not be removed; delete it by hand", self.previous)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock, 0)
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                os.close(self._lock)
            self._lock = None
