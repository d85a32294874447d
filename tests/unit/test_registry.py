"""The registry: names only, user modules from settings, a manifest producers validate against."""

import pytest

from btq.schemas.exceptions import RegistryError
from btq.worker.core.registry import BUILTIN_OPTIMIZERS, Registry, load_registry
from tests import fixture_registry


def test_settings_modules_register_beside_the_builtin_demo() -> None:
    registry = load_registry(["tests.fixture_registry"])
    assert {"demo.qa", "t.qa", "t.two"} <= set(registry.programs)
    assert "FailingOptimizer" in registry.optimizers


def test_module_without_register_is_refused() -> None:
    with pytest.raises(RegistryError, match="register"):
        load_registry(["json"])


def test_unknown_names_raise_a_registry_error_listing_known_ones() -> None:
    with pytest.raises(RegistryError, match=r"t\.qa"):
        load_registry(["tests.fixture_registry"]).get("programs", "nope")


def test_manifest_lists_predictors_splits_and_optimizer_signatures() -> None:
    registry = Registry()
    fixture_registry.register(registry)
    manifest = registry.manifest("w1")
    assert manifest.programs["t.two"] == ["draft", "check"]
    assert manifest.programs["t.qa"] == ["self"]
    assert manifest.datasets["t.arith"] == ["test", "train", "val"]
    assert "max_bootstrapped_demos" in manifest.optimizers["BootstrapFewShotWithRandomSearch"].init_params
    assert "trainset" in manifest.optimizers["BootstrapFinetune"].compile_params
    assert set(BUILTIN_OPTIMIZERS) <= set(manifest.optimizers)


def test_only_teleprompters_can_be_allowed() -> None:
    with pytest.raises(TypeError):
        Registry().optimizer(dict)  # type: ignore[arg-type]
