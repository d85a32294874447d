"""Old import paths kept working: bare names from a checkout, and modules that moved to a new home.

Bare names: `import worker.main` from a source checkout is served by the installed `btq.*` modules.

The packages install only as `btq.schemas`, `btq.producer` and `btq.worker`, so nothing named `schemas`,
`producer` or `worker` is put into anyone's environment. A process whose working directory is a checkout
still finds the repository's top-level folders under their bare names (scripts and commands written
before the namespace, e.g. `celery -A worker.main worker`, or `worker.local.registry` in `BTQ_IMPORTS`).
Loading those files a second time under another name would make a second copy of every module (two
Celery apps, two registries, classes that are not the same classes), so the bare names are made
aliases instead: `worker.main` IS `btq.worker.main`, with a DeprecationWarning naming the right import.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Mapping
from types import ModuleType


class _AliasLoader(importlib.abc.Loader):
    """Hands back the already-imported real module; executing it again would make the copy we avoid."""

    def __init__(self, real: str) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """Return the real module (its name, spec and path are kept: the import system sets them only if unset)."""
        return importlib.import_module(self.real)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the real module was executed when it was imported."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds a module at the path it had before it moved (`btq.worker.registry`) as its new home."""

    def __init__(self, package: str, moved: Mapping[str, str]) -> None:
        self.package = package
        # Longest first, so `local.registry` wins over `local`.
        self.moved = sorted(((f"{package}.{old}", new) for old, new in moved.items()), key=lambda p: -len(p[0]))

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Return an alias spec for a moved module (or a module below a moved package); None otherwise."""
        for old, new in self.moved:
            if fullname == old or fullname.startswith(old + "."):
                real = new + fullname[len(old) :]
                warnings.warn(f"`{fullname}` moved to `{real}`: import {real}", DeprecationWarning, stacklevel=2)
                return importlib.machinery.ModuleSpec(fullname, _AliasLoader(real))
        return None


def alias_moved_modules(package: str, moved: Mapping[str, str]) -> None:
    """Serve each `package.<old>` (a module path that moved) as the module `moved[old]`, the same object.

    Called by a package's `__init__` with its table of moves: code written against the old paths (a user's
    registry module, `BTQ_IMPORTS`, scripts) keeps working, and finds one copy of every module.
    """
    if not any(isinstance(f, _MovedFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder(package, moved))


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds `<bare>.<rest>` as the module `<real>.<rest>`."""

    def __init__(self, bare: str, real: str) -> None:
        self.bare = bare
        self.real = real

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        """Return an alias spec for a submodule of the bare package; None for every other name."""
        if not fullname.startswith(self.bare + "."):
            return None
        real = self.real + fullname[len(self.bare) :]
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(real))


def alias_bare_package(bare: str, real: str) -> None:
    """Make `bare` and every `bare.<sub>` the same module objects as `real` and `real.<sub>`.

    Called by a package's `__init__` when it was imported under its bare name; the import system keeps
    what `sys.modules[bare]` holds after the `__init__` ran, so the bare module object is dropped.
    """
    warnings.warn(
        f"`{bare}` is `{real}` (bettertogether-queue installs its packages under btq.*): import {real}",
        DeprecationWarning,
        stacklevel=3,
    )
    if not any(isinstance(f, _AliasFinder) and f.bare == bare for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder(bare, real))
    sys.modules[bare] = importlib.import_module(real)
