"""The public surface: what each package exports is listed, importable and documented (as httpx checks)."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PUBLIC_PACKAGES = ["peerbot", "peerbot.errors", "peerbot.media", "peerbot.orga", "peerbot.orbit", "peerbot.local",
                   "peerbot.ice_servers", "peerbot.quality", "peerbot.conversation", "peerbot.load",
                   "peerbot.testing"]


def _public_names(module: types.ModuleType) -> set[str]:
    """Names a user sees on the module: not private, not a module imported only for internal use."""
    names = set()
    for name, value in vars(module).items():
        if name.startswith("_") or name in {"annotations", "TYPE_CHECKING"}:
            continue
        if isinstance(value, types.ModuleType):
            continue  # submodules are reachable by their own import path; other modules are not ours
        if getattr(value, "__module__", module.__name__).split(".")[0] != "peerbot":
            continue  # typing helpers and the like imported from elsewhere
        names.add(name)
    return names


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_public_name_of_a_package_is_in_its_all_and_every_all_entry_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), f"{name}.__all__ lists a name twice"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what the module lacks: {missing}"
    unlisted = _public_names(module) - exported
    assert not unlisted, f"{name} has public names missing from __all__: {sorted(unlisted)}"


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_every_exported_class_and_function_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    undocumented = [n for n in module.__all__
                    if (inspect.isclass(getattr(module, n)) or inspect.isfunction(getattr(module, n)))
                    and not inspect.getdoc(getattr(module, n))]
    assert not undocumented, f"{name} exports undocumented objects: {undocumented}"


def test_every_error_in_peerbot_errors_derives_from_peerbot_error() -> None:
    errors = importlib.import_module("peerbot.errors")
    classes = [v for v in vars(errors).values() if inspect.isclass(v) and issubclass(v, BaseException)]
    assert classes
    outside = [c.__name__ for c in classes if not issubclass(c, errors.PeerbotError)]
    assert not outside, f"errors outside the PeerbotError tree: {outside}"


def test_the_errors_docstring_draws_every_error_class() -> None:
    errors = importlib.import_module("peerbot.errors")
    drawn = errors.__doc__ or ""
    classes = [n for n, v in vars(errors).items()
               if inspect.isclass(v) and issubclass(v, errors.PeerbotError) and not n.startswith("_")]
    assert [n for n in classes if n not in drawn] == []


def test_no_public_exception_class_lives_outside_peerbot_errors() -> None:
    import pkgutil

    import peerbot

    errors = importlib.import_module("peerbot.errors")
    stray = []
    for info in pkgutil.walk_packages(peerbot.__path__, "peerbot."):
        if info.name.startswith("peerbot.cli") or "._" in info.name:
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Exception) and not attr.startswith("_")
                    and value.__module__ == module.__name__ and value.__module__ != errors.__name__):
                stray.append(f"{info.name}.{attr}")
    assert not stray, f"public exception classes outside peerbot.errors: {stray}"
