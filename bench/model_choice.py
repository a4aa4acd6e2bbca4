"""Which network, and should each face also be embedded mirrored (issue 16)? The float network
(model/float) and its int8 copy (facever quantize: calibrated on fold 9), each with and without averaging
the embedding of the chip and of its mirror image; the detector as shipped. Chosen on LFW folds 1-4
(bench/detector_choice.py); this choice made model/default the int8 copy, mirrored.

    facever quantize --model model/float --out runs/int8/model --no-flip --no-evaluate
    # the float one mirrored: a copy of model/float whose card says "flip_test_time": true (and
    # another name, so that no cache mixes them up)
    cd bench && ../.venv/bin/python model_choice.py --int8 ../runs/int8/model --float-mirrored DIR
"""

from __future__ import annotations

from pathlib import Path

from detector_choice import compare, parser

from facever.model.detection import DetectorConfig

MODELS = Path(__file__).resolve().parents[1] / "model"


def main() -> None:
    cli = parser(__doc__.splitlines()[0], "model_choice")
    cli.add_argument("--float", dest="float_model", type=Path, default=MODELS / "float")
    cli.add_argument("--float-mirrored", type=Path, required=True, help="model/float with flip_test_time on")
    cli.add_argument("--int8", type=Path, required=True, help="facever quantize --no-flip of model/float")
    cli.add_argument("--int8-mirrored", type=Path, default=MODELS / "default")
    args = cli.parse_args()
    settings = {
        "float": (args.float_model, DetectorConfig()),
        "float, mirrored too": (args.float_mirrored, DetectorConfig()),
        "int8": (args.int8, DetectorConfig()),
        "int8, mirrored too": (args.int8_mirrored, DetectorConfig()),
    }
    compare(
        "model_choice",
        "Float or int8 network, with or without the mirror image, LFW folds 1-4",
        settings,
        args,
    )


if __name__ == "__main__":
    main()
