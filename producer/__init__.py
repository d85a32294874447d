# The package is installed as `btq.producer` (pyproject.toml maps it). Imported from the repository's
# top-level folder under its bare name it would be a second copy of every module (two Celery apps, two
# registries) and would shadow PyPI's unrelated `producer`: refuse, naming the right import.
if __name__ != "btq.producer":
    raise ImportError(f"import btq.producer, not {__name__}: bettertogether-queue installs its packages under btq.*")
