# Installed as `btq.worker` only (pyproject.toml maps the folder). Imported under its bare name from
# a checkout, it becomes an alias of `btq.worker` (one copy of every module), with a DeprecationWarning.
if __name__ != "btq.worker":
    from btq.schemas.checkout_alias import alias_bare_package

    alias_bare_package(__name__, "btq.worker")
