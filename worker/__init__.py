# The package is installed as `btq.worker` (pyproject.toml maps it). Imported from the repository's
# top-level folder under its bare name it would be a second copy of every module (two Celery apps, two
# registries) and would shadow PyPI's unrelated `worker`: refuse, naming the right import.
if __name__ != "btq.worker":
    raise ImportError(f"import btq.worker, not {__name__}: bettertogether-queue installs its packages under btq.*")
