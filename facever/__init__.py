"""facever: self-hosted face verification.

The code lives in three top-level folders that install as sub-packages:
``model/`` (facever.model: detection, alignment, ONNX embedding runtime, network, export),
``training/`` (facever.training: trainer, losses, LFW evaluation) and
``app/`` (facever.app: the HTTP service).
"""

__version__ = "0.1.0"
