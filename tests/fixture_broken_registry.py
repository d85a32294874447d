"""A registry module that cannot be imported: a worker listing it must refuse to start."""

import btq_missing_dependency_for_tests  # type: ignore[import-not-found]  # noqa: F401
