"""Where P-Net's pyramid levels are resized from (issue 16): each level from the photo, as MTCNN does,
or each from the level before it, which reads far fewer pixels (a 250x250 photo's six levels: 0.82 ms
of Pillow's resizing against 0.30, one core). Chosen on LFW folds 1-4 (bench/detector_choice.py); the
faces differ a little (landmarks ~1.5 px apart on LFW's ~100 px faces), so the choice is made on
accuracy, not assumed.
"""

from __future__ import annotations

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

SETTINGS = {
    "levels from the photo": DetectorConfig(pyramid_from_previous=False),
    "levels from the level before": DetectorConfig(pyramid_from_previous=True),
}


def main() -> None:
    args = parser(__doc__.splitlines()[0], "pyramid").parse_args()
    compare(
        "pyramid",
        "P-Net's pyramid levels resized from the photo or from the level before, LFW folds 1-4",
        SETTINGS,
        args,
    )


if __name__ == "__main__":
    main()
