"""Which of P-Net's candidates R-Net sees first, and what fills an R-Net or O-Net crop past the photo's
edge (issue 16): all above MTCNN's 0.6 and black, or those above 0.8 first (fewer crops: faster; the
rest where they give no face) and the photo's mean colour (a face filling the frame placed as the
framed pass would place it). Chosen on LFW folds 1-4 (bench/detector_choice.py); every setting takes
the face with the largest visible box (model/face_choice.py).
"""

from __future__ import annotations

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

SETTINGS = {
    "P-Net 0.6, black": DetectorConfig(pnet_first=0.6, crop_fill_mean=False),
    "P-Net 0.8 first, black": DetectorConfig(pnet_first=0.8, crop_fill_mean=False),
    "P-Net 0.6, mean colour": DetectorConfig(pnet_first=0.6, crop_fill_mean=True),
    "P-Net 0.8 first, mean colour": DetectorConfig(pnet_first=0.8, crop_fill_mean=True),
}


def main() -> None:
    args = parser(__doc__.splitlines()[0], "pnet_fill").parse_args()
    compare("pnet_fill", "P-Net's threshold and the crops' fill, LFW folds 1-4", SETTINGS, args)


if __name__ == "__main__":
    main()
