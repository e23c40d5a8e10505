"""The repository's room folders (`cluster/ dashboards/ jobs/ models/ results/ search_spaces/`) as `tunelab.<room>`.

An installed tunelab has them inside the package (setuptools' `package-dir` in pyproject.toml maps each folder to
`tunelab.<room>`), so it installs one top-level package. A source tree (a checkout on `sys.path`, or this repository as
a Ray job's `working_dir`) keeps them beside `tunelab/`: there this finder serves `tunelab.<room>` from
`<root>/<room>`. It answers for those six names only; submodules then load through each room's `__path__`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOMS = ("cluster", "dashboards", "jobs", "models", "results", "search_spaces")


class _SourceRooms:
    """A meta-path finder for `tunelab.<room>` in a source tree."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname: str, path=None, target=None):
        prefix, _, room = fullname.partition(".")
        if prefix != "tunelab" or room not in ROOMS:
            return None
        init = self.root / room / "__init__.py"
        if not init.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])

    def invalidate_caches(self) -> None:
        pass


def install(package_dir: Path) -> None:
    """Serve the rooms from beside `package_dir` when they are not inside it (a source tree); once per process."""
    if (package_dir / "models").is_dir():  # installed: the rooms are subpackages like any other
        return
    root = package_dir.parent
    if any(isinstance(f, _SourceRooms) for f in sys.meta_path):
        return
    # first: the rooms beside *this* tunelab/, even where an editable install's finder maps the same names to another
    # checkout (a Ray job's working_dir is a copy of the tree, run by the same virtualenv)
    sys.meta_path.insert(0, _SourceRooms(root))
