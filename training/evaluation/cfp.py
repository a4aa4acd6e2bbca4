"""The CFP data set (Celebrities in Frontal-Profile) as laid out in ../shared/data/cfp: evaluation only.

Two protocols, each 10 identity-disjoint folds of 350 same and 350 different pairs: FF pairs two
frontal photos, FP a frontal and a profile photo. Image keys are paths below ``Data/Images``
without the extension: ``001/frontal/01``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from facever.training.evaluation.lfw import Pair

Protocol = Literal["FF", "FP"]
PROTOCOLS: tuple[Protocol, ...] = ("FF", "FP")


@dataclass(frozen=True)
class CFP:
    root: Path

    @property
    def images_dir(self) -> Path:
        return self.root / "Data" / "Images"

    def path(self, key: str) -> Path:
        return self.images_dir / f"{key}.jpg"

    def image_list(self, view: Literal["F", "P"]) -> dict[int, str]:
        """Pair_list_F.txt or Pair_list_P.txt: the protocol's 1-based index -> image key."""
        keys = {}
        for line in (self.root / "Protocol" / f"Pair_list_{view}.txt").read_text().split("\n"):
            if not line.strip():
                continue
            index, relative = line.split()
            image = (self.root / "Protocol" / relative).resolve().relative_to(self.images_dir.resolve())
            keys[int(index)] = str(image.with_suffix("")).replace("\\", "/")
        return keys

    def pairs(self, protocol: Protocol) -> list[Pair]:
        if protocol not in PROTOCOLS:
            raise ValueError(f"CFP protocol must be FF or FP, not {protocol!r}")
        frontal = self.image_list("F")
        second = frontal if protocol == "FF" else self.image_list("P")
        pairs = []
        split = self.root / "Protocol" / "Split" / protocol
        for fold in range(1, 11):
            for name, same in (("same", True), ("diff", False)):
                for line in (split / f"{fold:02d}" / f"{name}.txt").read_text().split():
                    a, b = (int(v) for v in line.split(","))
                    pairs.append(Pair(fold, frontal[a], second[b], same))
        return pairs

    def frontal_people(self) -> dict[str, list[str]]:
        """Person id -> their frontal image keys (for all-vs-all impostor pairs)."""
        people: dict[str, list[str]] = {}
        for key in self.image_list("F").values():
            people.setdefault(key.split("/")[0], []).append(key)
        return people


def person(key: str) -> str:
    return key.split("/", 1)[0]
