"""Should the landmarks O-Net places in a face's crop be averaged with those it places in the mirrored
crop, mirrored back (issue 16: O-Net's landmarks are coarse)? One more O-Net run a photo, on its faces
only. Chosen on LFW folds 1-4 (bench/detector_choice.py).
"""

from __future__ import annotations

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

SETTINGS = {
    "O-Net's landmarks": DetectorConfig(mirror_landmarks=False),
    "averaged with the mirrored crop's": DetectorConfig(mirror_landmarks=True),
}


def main() -> None:
    args = parser(__doc__.splitlines()[0], "mirror_landmarks").parse_args()
    compare(
        "mirror_landmarks",
        "O-Net's landmarks or their average with the mirrored crop's, LFW folds 1-4",
        SETTINGS,
        args,
    )


if __name__ == "__main__":
    main()
