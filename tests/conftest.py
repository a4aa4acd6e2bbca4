"""Shared test fixtures: the LFW copy beside the repository (../shared/data/lfw)."""

from pathlib import Path

import pytest

from facever.training.lfw import LFW

REPO = Path(__file__).resolve().parents[1]
LFW_ROOT = REPO.parent / "shared" / "data" / "lfw"


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    if not (LFW_ROOT / "pairs.txt").exists():
        pytest.fail(f"LFW is expected at {LFW_ROOT} (../shared/data/lfw beside the repository)")
    return LFW_ROOT


@pytest.fixture(scope="session")
def lfw_image(lfw_root):
    def path(key: str) -> Path:
        return lfw_root / "images" / f"{key}.jpg"

    return path


CFP_ROOT = REPO.parent / "shared" / "data" / "cfp"


@pytest.fixture(scope="session")
def cfp_root() -> Path:
    if not (CFP_ROOT / "Protocol" / "Pair_list_F.txt").exists():
        pytest.fail(f"CFP is expected at {CFP_ROOT} (../shared/data/cfp beside the repository)")
    return CFP_ROOT


@pytest.fixture(scope="session")
def fold9_lfw(lfw_root, tmp_path_factory):
    """An LFW folder holding 12 of fold 9's people (the calibration fold) and the official pairs."""
    lfw = LFW(lfw_root)
    people = sorted(p for p in lfw.fold_identities()[9] if 2 <= len(lfw.identities().get(p, [])) <= 6)[:12]
    root = tmp_path_factory.mktemp("lfw-fold9")
    (root / "images").mkdir()
    (root / "pairs.txt").symlink_to(lfw_root / "pairs.txt")
    for person in people:
        (root / "images" / person).symlink_to(lfw_root / "images" / person)
    return root
