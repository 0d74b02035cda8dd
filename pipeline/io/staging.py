"""The output folder at the edge: a run writes into a private staging folder inside it and moves its
files into place only when the whole run succeeded, the manifest last."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.errors import OutputError


class Staging:
    """A private folder inside the output folder; ``commit`` moves its files to their final names."""

    def __init__(self, output: Path):
        self.output = Path(output)
        try:
            self.output.mkdir(parents=True, exist_ok=True)
            self.root = self.output / f".staging-{os.getpid()}"
            if self.root.exists():
                shutil.rmtree(self.root)
            self.root.mkdir()
        except OSError as e:
            raise OutputError(f"cannot write the output folder: {e.strerror}", self.output) from None
        if not os.access(self.output, os.W_OK):
            raise OutputError("the output folder is not writable", self.output)

    def path(self, relative: str) -> Path:
        p = self.root / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def folder(self, relative: str) -> Path:
        p = self.root / relative
        p.mkdir(parents=True, exist_ok=True)
        return p

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def commit(self, last: str = "manifest.json") -> None:
        """Move every staged file into place, ``last`` at the very end."""
        names = [f for f in self.files() if f != last] + ([last] if (self.root / last).exists() else [])
        for name in names:
            final = self.output / name
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / name, final)
        shutil.rmtree(self.root, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
