"""The LFW data set as laid out in ../shared/data/lfw: the image folders and the View 2 pairs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    fold: int  # 1..10
    first: str  # image key: "Person_Name/Person_Name_0001"
    second: str
    same: bool


@dataclass(frozen=True)
class LFW:
    root: Path

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    def path(self, key: str) -> Path:
        return self.images_dir / f"{key}.jpg"

    def identities(self) -> dict[str, list[str]]:
        """Every person -> their image keys, sorted."""
        people = {}
        for folder in sorted(p for p in self.images_dir.iterdir() if p.is_dir()):
            people[folder.name] = [f"{folder.name}/{f.stem}" for f in sorted(folder.glob("*.jpg"))]
        return people

    def pairs(self) -> list[Pair]:
        return parse_pairs((self.root / "pairs.txt").read_text())

    def fold_identities(self) -> dict[int, set[str]]:
        """Fold -> the people named in its pairs (the ten sets are disjoint)."""
        folds: dict[int, set[str]] = {}
        for pair in self.pairs():
            folds.setdefault(pair.fold, set()).update({person(pair.first), person(pair.second)})
        return folds


def image_key(name: str, number: int | str) -> str:
    return f"{name}/{name}_{int(number):04d}"


def person(key: str) -> str:
    return key.split("/", 1)[0]


def parse_pairs(text: str) -> list[Pair]:
    """View 2 pairs.txt: a header "folds per_fold", then per fold that many matched lines
    (name n1 n2) followed by that many mismatched lines (name1 n1 name2 n2)."""
    lines = [line.split() for line in text.strip().splitlines()]
    n_folds, per_fold = int(lines[0][0]), int(lines[0][1])
    body = lines[1:]
    if len(body) != n_folds * 2 * per_fold:
        raise ValueError(f"pairs.txt has {len(body)} pair lines, expected {n_folds * 2 * per_fold}")
    pairs = []
    for index, fields in enumerate(body):
        fold = index // (2 * per_fold) + 1
        if len(fields) == 3:
            name, a, b = fields
            pairs.append(Pair(fold, image_key(name, a), image_key(name, b), True))
        elif len(fields) == 4:
            name_a, a, name_b, b = fields
            pairs.append(Pair(fold, image_key(name_a, a), image_key(name_b, b), False))
        else:
            raise ValueError(f"pairs.txt line {index + 2} has {len(fields)} fields: {fields}")
    return pairs
