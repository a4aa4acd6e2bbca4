"""The layers of the code: the runtime (facever.model), the evaluation (facever.training.evaluation) and
the service (facever.app) import no torch, and the service imports nothing of the trainer.

Each check imports every module of the packages in a fresh interpreter and then looks at sys.modules,
so an import anywhere below (however indirect) counts.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

IMPORT_ALL = """
import importlib, json, pkgutil, sys
imported = []
for package_name in sys.argv[1:]:
    package = importlib.import_module(package_name)
    imported.append(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + "."):
        if ".migrations" in module.name:  # alembic scripts, run by alembic only
            continue
        importlib.import_module(module.name)
        imported.append(module.name)
print(json.dumps({"imported": imported, "modules": sorted(sys.modules)}))
"""


def import_everything(*packages: str) -> tuple[list[str], set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *packages], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["imported"], set(report["modules"])


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "packages",
    [
        ("facever.model",),
        ("facever.training.evaluation",),
        ("facever.app",),
    ],
    ids=["runtime", "evaluation", "service"],
)
def test_runtime_evaluation_and_service_import_no_torch(packages):
    imported, modules = import_everything(*packages)
    assert len(imported) > 3, imported  # the walk found the modules
    assert "torch" not in top_level(modules), sorted(m for m in modules if m.startswith("torch"))[:5]


def test_evaluation_includes_the_calibration_and_the_protocols():
    imported, _ = import_everything("facever.training.evaluation")
    for name in ("evaluate", "calibrate", "protocol", "lfw", "cfp"):
        assert f"facever.training.evaluation.{name}" in imported


def test_the_service_imports_nothing_of_the_trainer():
    _, modules = import_everything("facever.app")
    assert not [m for m in modules if m.startswith("facever.training")]
    assert not top_level(modules) & {"torch", "sklearn", "matplotlib", "dlib"}


def test_the_trainer_still_imports_torch():
    """The check above would pass vacuously if torch could never be seen: the trainer does import it."""
    _, modules = import_everything("facever.training.networks")
    assert "torch" in top_level(modules)
