"""Should a chip whose face is dark be equalised before the network (issue 16, point 3: light)? Under
dark, one-sided light the network's embeddings of different people crowd together (bench/proxies.py's
all-vs-all table: the verify threshold accepts three to five times as many of them). The setting is
the model card's ``alignment.equalise_dark_chips_below``: the chip's luminance histogram is equalised,
as the detector's copy is, when the mean luminance of its middle is below that level (70 of 255, set
before measuring; equalising every chip is shown beside it). Chosen on LFW folds 1-4 only
(bench/detector_choice.py), each setting with its own fold-9 threshold.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from detector_choice import compare, parser

from facever.model.card import ModelCard
from facever.model.detection import DetectorConfig

LEVELS = {"chips as cut": 0.0, "dark chips equalised (middle below 70)": 70.0, "every chip equalised": 256.0}


def model_with(model_dir: Path, level: float, folder: Path) -> Path:
    """A copy of ``model_dir`` (its files linked) whose card equalises chips darker than ``level``."""
    for file in model_dir.iterdir():
        if file.name != "model_card.json":
            (folder / file.name).symlink_to(file.resolve())
    card = ModelCard.load(model_dir)
    card.alignment = card.alignment.model_copy(update={"equalise_dark_chips_below": level})
    card.save(folder)
    return folder


def main() -> None:
    args = parser(__doc__.splitlines()[0], "dark_chips").parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        settings = {}
        for i, (name, level) in enumerate(LEVELS.items()):
            folder = Path(scratch) / str(i)
            folder.mkdir()
            settings[name] = (model_with(args.model, level, folder), DetectorConfig())
        compare("dark_chips", "Dark chips equalised before the network, LFW folds 1-4", settings, args)


if __name__ == "__main__":
    main()
