"""Detection and alignment resampled with OpenCV instead of Pillow (issue 16: a whole image at least
10x faster than dlib's pipeline), on LFW folds 1-4 (bench/detector_choice.py), to set beside the same
comparison run at the commit before it (Pillow throughout, resampling-pillow.json). The two runs
share their proxy files (``--cache``), made once by the Pillow detector.
"""

from __future__ import annotations

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

SETTINGS = {"OpenCV resampling, Pillow's equalisation": DetectorConfig()}


def main() -> None:
    args = parser(__doc__.splitlines()[0], "resampling").parse_args()
    compare("resampling", "Detection and alignment resampled with OpenCV, LFW folds 1-4", SETTINGS, args)


if __name__ == "__main__":
    main()
