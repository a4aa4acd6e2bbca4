"""Should a face that fills the frame be found again in the photo framed by a margin, and its box and
landmarks taken from there (issue 16: MTCNN places landmarks worse when the face has no room around
it)? Chosen on LFW folds 1-4 (bench/detector_choice.py): as photographed (faces cover ~20 % of the
photo, never over 25 %), tight crops (~62 %) and relit face-filling crops (~56 %).
"""

from __future__ import annotations

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

SETTINGS = {
    "as found": DetectorConfig(reframe_coverage=0.0),
    "face-filling photos framed (coverage > 0.4)": DetectorConfig(reframe_coverage=0.4),
}


def main() -> None:
    args = parser(__doc__.splitlines()[0], "reframe").parse_args()
    compare("reframe", "Face-filling photos found again with a margin, LFW folds 1-4", SETTINGS, args)


if __name__ == "__main__":
    main()
