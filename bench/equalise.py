"""Should MTCNN see the photo as it is or a copy with its luminance histogram equalised (issue 16)?
With ``equalize`` the copy is tried first and the photo itself only when the copy shows no face;
without it the photo alone is used (no retry). Chosen on LFW folds 1-4 (bench/detector_choice.py).
"""

from __future__ import annotations

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

SETTINGS = {
    "photo as it is": DetectorConfig(equalize=False),
    "equalised copy first": DetectorConfig(equalize=True),
}


def main() -> None:
    args = parser(__doc__.splitlines()[0], "equalise").parse_args()
    compare("equalise", "Equalised copy or the photo, chosen on LFW folds 1-4", SETTINGS, args)


if __name__ == "__main__":
    main()
