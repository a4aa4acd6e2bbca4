"""The one face-choice policy: no face is an error, several faces give the largest (or an error under
'single'), whatever order they come in."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facever.model.detection import DetectedFace
from facever.model.errors import ErrorCode
from facever.model.face_choice import choose_face
from facever.model.images import ImageError


def face(side: float, x: float = 0.0) -> DetectedFace:
    return DetectedFace((x, 0.0, x + side, side), np.zeros((5, 2), np.float32), 0.99)


def test_no_face_is_a_no_face_error():
    with pytest.raises(ImageError) as error:
        choose_face([])
    assert error.value.code == ErrorCode.NO_FACE


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_the_largest_face_is_chosen_in_any_order(order):
    faces = [face(40), face(120, x=300), face(80, x=600)]
    assert choose_face([faces[i] for i in order]) is faces[1]


def test_single_refuses_several_faces_and_takes_one():
    with pytest.raises(ImageError) as error:
        choose_face([face(40), face(80, x=100)], "single")
    assert error.value.code == ErrorCode.MULTIPLE_FACES
    only = face(50)
    assert choose_face([only], "single") is only


def test_a_face_cut_by_the_photo_s_edge_counts_only_its_visible_part():
    # A 250x250 photo: its subject in the middle, and a neighbour's face at the left edge whose box
    # reaches 40 pixels past it (120 wide, 80 of them inside).
    frame = (250, 250)
    subject = DetectedFace((80.0, 60.0, 180.0, 200.0), np.zeros((5, 2), np.float32), 0.99, frame)
    neighbour = DetectedFace((-40.0, 20.0, 80.0, 190.0), np.zeros((5, 2), np.float32), 0.99, frame)
    assert neighbour.area > subject.area
    assert neighbour.visible_area == 80.0 * 170.0
    assert subject.visible_area == subject.area
    assert choose_face([neighbour, subject]) is subject
    # Without the frame the whole box counts, as before.
    assert replace(neighbour, frame=None).visible_area == neighbour.area
