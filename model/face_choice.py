"""Which face of a photo is compared: the one policy of the service, the evaluation, the calibration, the
training data and the benchmarks.

No face is an error (``no_face``): nothing is compared, never a guessed crop. With several faces, the
policy ``largest`` takes the face whose box has the largest part inside the photo (a face cut by the
photo's edge has a box reaching past it) and ``single`` refuses the photo (``multiple_faces``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from facever.model.detection import DetectedFace
from facever.model.errors import ErrorCode
from facever.model.images import ImageError

MultiFacePolicy = Literal["largest", "single"]


def choose_face(faces: Sequence[DetectedFace], policy: MultiFacePolicy = "largest") -> DetectedFace:
    """The face to compare among ``faces``, or ImageError (``no_face``, ``multiple_faces``)."""
    if not faces:
        raise ImageError(ErrorCode.NO_FACE, "no face was found in the image")
    if policy == "single" and len(faces) > 1:
        raise ImageError(
            ErrorCode.MULTIPLE_FACES,
            f"{len(faces)} faces were found and the multi-face policy is 'single'; "
            "send an image with one face, or use the policy 'largest'",
        )
    return max(faces, key=lambda face: face.visible_area)  # the first of equals: the detector's order
