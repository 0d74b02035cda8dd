"""Parts of a result that tasks write and later tasks (or the client, one at a time) read back.

A part is any picklable value (e.g. a list of (label, shapely geometry)) in one file of a folder shared by
the client and the workers, as the rasters' parts are. It is what keeps a result that grows with the
raster (the red-line polygons) out of memory: each task writes its share and returns only a name.
"""

from __future__ import annotations

import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PartFolder:
    """A folder of parts, named by the tasks that write them. Sent to the workers with the tasks."""

    root: Path

    def put(self, name: str, value: Any) -> str:
        """Write ``value`` as part ``name`` and return the name. Written under a name of its own, then renamed:
        a task rerun after its worker died never leaves a part half written, nor two writers on one file."""
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.root / f".{name}.{uuid.uuid4().hex}"
        try:
            with open(temporary, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.root / name)
        finally:
            temporary.unlink(missing_ok=True)
        return name

    def get(self, name: str) -> Any:
        """The value of part ``name``. The folder holds only what this run's own tasks wrote."""
        with open(self.root / name, "rb") as f:
            return pickle.load(f)
