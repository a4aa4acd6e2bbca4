"""Fixtures for the trainer's tests."""

import pytest

from facever.training.lfw import LFW


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
