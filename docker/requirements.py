"""Print the third-party requirements of btq and the named extras, one per line, from pyproject.toml.

The image installs them in a layer of their own (docker/Dockerfile), before the sources are copied, so an
edit of the sources never reinstalls dspy. Usage: python requirements.py pyproject.toml worker s3
"""

import sys
import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    """Return the project's dependencies plus those of `extras` (self-references dropped)."""
    with open(pyproject, "rb") as handle:
        project = tomllib.load(handle)["project"]
    name = project["name"]
    wanted = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; pyproject.toml has {sorted(optional)}")
        wanted += [req for req in optional[extra] if not req.startswith(name)]
    return wanted


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
