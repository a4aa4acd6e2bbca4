"""The layers of the code: the runtime (facever.model), the evaluation (facever.training.evaluation) and
the service (facever.app) import no torch, and the service imports nothing of the trainer; face choice
and compare-and-threshold are written once.

Each check imports every module of the packages in a fresh interpreter and then looks at sys.modules,
so an import anywhere below (however indirect) counts.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

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


@functools.cache  # several tests look at the same imports: one interpreter per package set
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


def test_the_runtime_imports_no_web_stack_and_the_trainer_nothing_of_the_service():
    _, runtime = import_everything("facever.model")
    assert not top_level(runtime) & {"fastapi", "starlette", "sqlalchemy", "uvicorn"}
    _, trainer = import_everything("facever.training")
    assert not [m for m in trainer if m.startswith("facever.app")]


def test_the_trainer_still_imports_torch():
    """The check above would pass vacuously if torch could never be seen: the trainer does import it."""
    _, modules = import_everything("facever.training.networks")
    assert "torch" in top_level(modules)


# What only facever.model.face_choice and facever.model.matching may write: a face taken off the detector's
# list by position (dlib's list, the peer's, is taken as face_recognition takes it), a score compared with
# a threshold, or an embedding product taken by hand. Strings and comments are left out (the API's
# descriptions say "score >= threshold").
ONE_PLACE_ONLY = {
    "face choice": re.compile(r"\bfaces \[ 0 \]"),
    "threshold decision": re.compile(
        r"\w*(score|similarit)\w*( \[ [^\]]* \])? (>=|>|<=|<) \w*(threshold|min_score)\b"
        r"|\w*(threshold|min_score) (>=|>|<=|<) \w*(score|similarit)"
    ),
    "embedding product": re.compile(r"\. embedding @|@ \w+ \. embedding\b|\( first \* second \)"),
}
SHARED = {"model/face_choice.py", "model/matching.py"}


def code_lines(path: Path) -> list[tuple[int, str]]:
    """Each line's code without strings and comments, tokens joined by single spaces."""
    lines: dict[int, list[str]] = {}
    with path.open("rb") as source:
        for token in tokenize.tokenize(source.readline):
            if (
                token.type in (tokenize.STRING, tokenize.COMMENT, tokenize.ENCODING)
                or not token.string.strip()
            ):
                continue
            if tokenize.tok_name[token.type].startswith("FSTRING"):  # Python 3.12+: f-strings in parts
                continue
            lines.setdefault(token.start[0], []).append(token.string)
    return [(number, " ".join(tokens)) for number, tokens in sorted(lines.items())]


@pytest.mark.parametrize("what", sorted(ONE_PLACE_ONLY))
def test_one_implementation_of_face_choice_and_of_compare_and_threshold(what):
    pattern = ONE_PLACE_ONLY[what]
    offenders = []
    for folder in ("app", "model", "training", "bench", "facever"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative in SHARED:
                continue
            offenders += [f"{relative}:{n}: {code}" for n, code in code_lines(path) if pattern.search(code)]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    ("what", "line"),
    [
        ("face choice", "crop = pipeline.crop(image, faces[0])"),
        ("threshold decision", "ok = bool(scores[best] >= threshold)"),
        ("threshold decision", "candidates = np.flatnonzero(scores >= min_score)"),
        ("embedding product", "score = float(first.embedding @ second.embedding)"),
        ("embedding product", "scores = (first * second).sum(1)"),
    ],
)
def test_the_pattern_check_sees_code_and_skips_strings(what, line, tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(f"{line}  # a comment\ntext = {line!r}\n")
    found = [n for n, code in code_lines(sample) if ONE_PLACE_ONLY[what].search(code)]
    assert found == [1]
