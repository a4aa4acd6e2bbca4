import math

import pytest
import torch

from facever.training.losses import ContrastiveLoss, contrastive_terms


def test_same_person_pair_costs_half_squared_distance():
    distance = torch.tensor([0.0, 0.5, 1.5])
    same = torch.zeros(3)  # y = 0: same person
    assert torch.allclose(contrastive_terms(distance, same, margin=1.0), torch.tensor([0.0, 0.125, 1.125]))


def test_different_people_pair_costs_half_squared_shortfall_inside_margin():
    distance = torch.tensor([0.0, 0.5, 0.9])
    different = torch.ones(3)  # y = 1: different people
    expected = torch.tensor([0.5, 0.125, 0.005])
    assert torch.allclose(contrastive_terms(distance, different, margin=1.0), expected)


def test_different_people_at_or_beyond_the_margin_cost_nothing():
    distance = torch.tensor([1.0, 1.2, 2.0])
    terms = contrastive_terms(distance, torch.ones(3), margin=1.0)
    assert torch.equal(terms, torch.zeros(3))
    # just inside the margin the cost is tiny but not zero
    assert contrastive_terms(torch.tensor([0.99]), torch.ones(1), margin=1.0).item() == pytest.approx(
        0.5 * 0.01**2, rel=1e-3
    )


def test_gradients_pull_same_people_together_and_push_different_apart():
    distance = torch.tensor([0.6, 0.6], requires_grad=True)
    labels = torch.tensor([0.0, 1.0])
    contrastive_terms(distance, labels, margin=1.0).sum().backward()
    same_gradient, different_gradient = distance.grad.tolist()
    assert same_gradient == pytest.approx(0.6)  # d/dD (D^2 / 2): descending shrinks D
    assert different_gradient == pytest.approx(-0.4)  # d/dD ((m - D)^2 / 2): descending grows D


def test_batch_loss_averages_same_and_different_pairs_separately():
    # three unit vectors: a and b the same person at distance sqrt(2), c another person
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([7, 7, 3])
    loss = ContrastiveLoss(margin=1.5, hard_negatives=False)(embeddings, labels)
    same = 0.5 * 2.0  # D^2 / 2 with D = sqrt(2)
    # different pairs: (a, c) D = 2 -> 0; (b, c) D = sqrt(2) -> (1.5 - sqrt(2))^2 / 2
    different = (0.0 + 0.5 * (1.5 - math.sqrt(2)) ** 2) / 2
    assert loss.item() == pytest.approx(same + different, rel=1e-5)


def test_hard_negatives_average_only_pairs_inside_the_margin():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([7, 7, 3])
    loss = ContrastiveLoss(margin=1.5, hard_negatives=True)(embeddings, labels)
    assert loss.item() == pytest.approx(1.0 + 0.5 * (1.5 - math.sqrt(2)) ** 2, rel=1e-5)
