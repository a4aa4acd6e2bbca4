"""The network registry: every architecture the trainer builds, with the crop and input it takes.

- ``facever-small`` (facever_small.py): a small ResNet on grey 64 or 96 pixel crops in the ArcFace
  layout, trained from scratch.
- ``dlib-resnet`` (dlib_resnet.py): the architecture of dlib's face ResNet, 150x150 RGB chips
  framed as dlib frames them, 128-D; ``pretrained: dlib`` starts from dlib's public-domain weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from facever.model.alignment import DLIB_CHIP_150, template
from facever.model.card import AlignmentSpec, Dlib5Framing, InputSpec
from facever.training.config import TrainConfig

if TYPE_CHECKING:
    from facever.training.networks.dlib_resnet import DlibResNet
    from facever.training.networks.facever_small import EmbeddingNet

DLIB_SIZE = 150
DLIB_WEIGHTS_SOURCE = (
    "dlib_face_recognition_resnet_model_v1.dat from the PyPI package face_recognition_models 0.3.0: "
    "dlib's face recognition ResNet by Davis King, public domain (CC0). dlib reports that it was trained "
    "from scratch on about 3 million faces of about 7,485 people from the VGG and FaceScrub data sets and "
    "images gathered from the internet; whether those include people of LFW or CFP is not documented. "
    "Read with facever's own parser (training/networks/dlib_format.py); dlib is not needed to run it."
)


def build_network(config: TrainConfig) -> EmbeddingNet | DlibResNet:
    net = config.network
    if net.architecture == "dlib-resnet":
        from facever.training.networks.dlib_resnet import DlibResNet

        if net.input_size != DLIB_SIZE or net.embedding_size != 128:
            raise ValueError("dlib-resnet takes 150x150 crops and gives 128-D embeddings")
        return DlibResNet.from_dlib() if net.pretrained == "dlib" else DlibResNet()
    if net.pretrained:
        raise ValueError(f"no pretrained weights for {net.architecture}")
    from facever.training.networks.facever_small import EmbeddingNet

    return EmbeddingNet(
        net.input_size, tuple(net.widths), tuple(net.blocks), net.embedding_size, net.dropout, net.stem_stride
    )


def crop_template(config: TrainConfig, pad: int = 0) -> np.ndarray:
    """The five template points of the network's crop, shifted by ``pad`` for a crop with a margin."""
    if config.network.architecture == "dlib-resnet":
        return DLIB_CHIP_150 + pad
    return template(config.network.input_size, pad, config.data.crop_zoom)


def input_spec(config: TrainConfig) -> InputSpec:
    size = config.network.input_size
    if config.network.architecture == "dlib-resnet":
        return InputSpec(
            size=size,
            channels=3,
            colour="RGB; a grayscale image is given as three equal channels",
            normalisation="inside the network, as dlib: (x - mean RGB (122.782, 117.001, 104.298)) / 256",
        )
    return InputSpec(size=size)


def alignment_spec(config: TrainConfig) -> AlignmentSpec:
    points = np.round(crop_template(config), 4).tolist()
    views = list(config.alignment.views)
    if config.network.architecture == "dlib-resnet":
        dlib_5 = None
        if "dlib-5" in views:
            dlib_5 = Dlib5Framing(
                box_map=config.alignment.dlib_5_box_map,
                max_yaw=config.alignment.dlib_5_max_yaw,
                size=config.network.input_size,
            )
        return AlignmentSpec(
            template=points,
            layout="dlib's 150x150 face chip (padding 0.25): MTCNN's landmarks placed where they fall, on "
            "average, in the chips dlib cuts with its own 5-point shape model (model/alignment.py)",
            views=views,
            dlib_5=dlib_5,
            equalise_dark_chips_below=config.alignment.equalise_dark_chips_below,
        )
    if views != ["landmarks"]:
        raise ValueError(
            "the dlib-5 view frames dlib's 150x150 chip: only for network.architecture dlib-resnet"
        )
    return AlignmentSpec(
        template=points,
        zoom=config.data.crop_zoom,
        equalise_dark_chips_below=config.alignment.equalise_dark_chips_below,
    )
