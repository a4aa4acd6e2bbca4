"""Shared test fixtures: the LFW copy beside the repository (../shared/data/lfw)."""

from pathlib import Path

import pytest

from facever.training.evaluation.lfw import LFW

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
def lfw_subset(lfw_root, tmp_path_factory):
    """Makes an LFW folder holding only the given people (linked, not copied) and the official pairs."""

    def make(name: str, people: list[str]) -> Path:
        root = tmp_path_factory.mktemp(name)
        (root / "images").mkdir()
        (root / "pairs.txt").symlink_to(lfw_root / "pairs.txt")
        for person in people:
            (root / "images" / person).symlink_to(lfw_root / "images" / person)
        return root

    return make


def training_people(lfw_root: Path, min_images: int, max_images: int, count: int) -> list[str]:
    """The first ``count`` people with that many images and in neither fold 9 nor fold 10."""
    lfw = LFW(lfw_root)
    folds = lfw.fold_identities()
    held_out = folds[9] | folds[10]
    people = lfw.identities().items()
    return [p for p, keys in people if min_images <= len(keys) <= max_images and p not in held_out][:count]


@pytest.fixture(scope="session")
def fold9_lfw(lfw_root, lfw_subset):
    """An LFW folder holding 12 of fold 9's people (the calibration fold) and the official pairs."""
    lfw = LFW(lfw_root)
    people = sorted(p for p in lfw.fold_identities()[9] if 2 <= len(lfw.identities().get(p, [])) <= 6)[:12]
    return lfw_subset("lfw-fold9", people)


@pytest.fixture(scope="session")
def small_lfw(lfw_root, lfw_subset):
    """An LFW folder with 20 people (6-12 images each, none in folds 9 or 10) and the official pairs."""
    return lfw_subset("lfw20", training_people(lfw_root, 6, 12, 20))


@pytest.fixture(scope="session")
def tiny_lfw(lfw_root, lfw_subset):
    """An LFW folder with 8 people (6-8 images each, none in folds 9 or 10) and the official pairs."""
    return lfw_subset("lfw8", training_people(lfw_root, 6, 8, 8))
