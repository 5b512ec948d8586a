"""Run stevedore's own manager tests with plugyard's verified managers put in place of its own.

Run in an environment with plugyard and a *signed* stevedore wheel installed,
as ``python stevedore_suite.py KEYRING_DIR``; it prints one JSON object with
what ran and how it ended, and exits 0 when every test passed but the ones
in ``DIFFERENCES`` (which must fail: they test what plugyard does on purpose
otherwise).

How: stevedore's own distribution is verified first, and imported only
through plugyard's verified importer, so that its test plugins
(``stevedore.tests.test_extension:FauxExtension`` and the others, declared in
stevedore's ``entry_points.txt``) are admitted by a policy that requires a
signature. Then, in each test module, the names of stevedore's managers
(``extension.ExtensionManager``, ``driver.DriverManager``, an imported
``DriverManager`` and so on) are pointed at plugyard's managers, bound to
that policy, and the tests run with ``unittest``: every manager they make
lists through plugyard's index and verifies stevedore's distribution before
loading a test plugin. stevedore's own modules are left as they are.

Left out: ``test_cache`` (stevedore's on-disk cache, which plugyard's managers
do not use) and ``test_sphinxext`` (the Sphinx directive, not a manager).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
import unittest
from typing import Any

#: stevedore's test modules for the managers, and those for its examples.
MODULES = [
    "test_callback",
    "test_dispatch",
    "test_driver",
    "test_enabled",
    "test_example_fields",
    "test_example_simple",
    "test_extension",
    "test_hook",
    "test_named",
    "test_test_manager",
]

#: Tests that check what plugyard's managers do differently on purpose, and why.
DIFFERENCES = {
    "stevedore.tests.test_extension.TestCallback.test_load_multiple_times_entry_points": (
        "two managers get the same EntryPoint objects only through stevedore's process-wide "
        "ENTRY_POINT_CACHE; plugyard's managers list anew (a later install is seen) and bind "
        "each entry point to their own trust policy"
    ),
    # stevedore declares e2 = stevedore.tests.notfound:UnimportableExtension, a
    # module that does not exist, and expects an ImportError. Under a policy that
    # requires a signature, an entry point naming a module outside the signed
    # manifest is refused before import with SignatureError (foreign-module),
    # which is deliberately not an ImportError.
    "stevedore.tests.test_callback.TestCallback.test_extension_failure_custom_callback": (
        "an entry point naming a module outside stevedore's signed manifest is refused before "
        "import with SignatureError, not left to fail with ImportError"
    ),
    "stevedore.tests.test_driver.TestCallback.test_bad_driver": (
        "as above: the missing module's entry point is refused as foreign-module"
    ),
}

#: Where each manager lives in stevedore, by the name plugyard.stevedore gives it.
PLACES = {
    "ExtensionManager": ["stevedore", "stevedore.extension"],
    "NamedExtensionManager": ["stevedore", "stevedore.named"],
    "DriverManager": ["stevedore", "stevedore.driver"],
    "HookManager": ["stevedore", "stevedore.hook"],
    "EnabledExtensionManager": ["stevedore", "stevedore.enabled"],
    "DispatchExtensionManager": ["stevedore.dispatch"],
    "NameDispatchExtensionManager": ["stevedore.dispatch"],
}
MANAGER_MODULES = {where for places in PLACES.values() for where in places}


class _Outcomes(unittest.TextTestResult):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passed: list[str] = []

    def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802 - unittest's name
        super().addSuccess(test)
        self.passed.append(test.id())


def _verify_stevedore(keyring_dir: str) -> Any:
    """Verify the installed stevedore and import it only from the verified bytes."""
    from plugyard import TrustPolicy
    from plugyard._policy import verified_importer
    from plugyard.trust import Keyring, verify_distribution

    assert "stevedore" not in sys.modules, "stevedore was imported before it was verified"
    keyring = Keyring.from_directory(keyring_dir)
    result = verify_distribution("stevedore", keyring)
    if not result.ok:
        raise SystemExit(f"stevedore does not verify: {result.problems}")
    verified_importer().add(result)
    return TrustPolicy(mode="require", keyring=keyring)


class _Module(types.ModuleType):
    """A stevedore module as a test module sees it: plugyard's managers, the rest stevedore's."""

    def __init__(self, real: types.ModuleType, managers: dict[str, type]) -> None:
        super().__init__(real.__name__, real.__doc__)
        vars(self).update(managers)
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _substitute(managers: dict[str, type], module: types.ModuleType) -> list[str]:
    """Point test ``module``'s names for stevedore's managers at plugyard's ``managers``.

    Only the test module's own names change: stevedore's modules are left as
    they are (stevedore 5.0 calls ``super(NamedExtensionManager, self)`` by
    module global, and tests ``mock.patch`` its classes by their dotted
    names), so plugyard's managers run on stevedore's unchanged classes.

    Returns:
        The names changed.
    """
    originals = {
        getattr(importlib.import_module(where), name): managers[name]
        for name, places in PLACES.items()
        for where in places
    }
    placed = []
    for attr, value in list(vars(module).items()):
        if isinstance(value, types.ModuleType) and value.__name__ in MANAGER_MODULES:
            names = {n: managers[n] for n, places in PLACES.items() if value.__name__ in places}
            setattr(module, attr, _Module(value, names))
            placed.append(attr)
        elif isinstance(value, type) and value in originals:
            setattr(module, attr, originals[value])
            placed.append(attr)
    return sorted(placed)


def main(keyring_dir: str) -> int:
    """Run the suite; print the outcome as JSON; 0 if it matched what is expected."""
    policy = _verify_stevedore(keyring_dir)
    import stevedore

    import plugyard.stevedore

    bound = plugyard.stevedore.bind(policy)
    managers: dict[str, type] = {name: getattr(bound, name) for name in PLACES}
    loaded = type(sys.modules["stevedore.extension"].__spec__.loader).__name__  # type: ignore[union-attr]
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    placed = {}
    for name in MODULES:
        module = importlib.import_module(f"stevedore.tests.{name}")
        placed[name] = _substitute(managers, module)
        suite.addTests(loader.loadTestsFromModule(module))
    with open(os.devnull, "w") as quiet:  # noqa: PTH123 - a stream for unittest's dots
        result = unittest.TextTestRunner(stream=quiet, resultclass=_Outcomes).run(suite)
    assert isinstance(result, _Outcomes)
    failed = {test.id(): text for test, text in [*result.failures, *result.errors]}
    expected = {name for name in DIFFERENCES if name in failed}
    report = {
        "stevedore": stevedore.__file__,
        "loader": loaded,
        "placed": placed,
        "ran": result.testsRun,
        "passed": sorted(result.passed),
        "failed": {k: v for k, v in sorted(failed.items()) if k not in expected},
        "differences": {name: DIFFERENCES[name] for name in sorted(expected)},
        "differences_passing": sorted(set(DIFFERENCES) & set(result.passed)),
        "skipped": sorted(test.id() for test, _ in result.skipped),
    }
    print(json.dumps(report))
    return 0 if not report["failed"] and not report["differences_passing"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
