"""A short real training run: contrastive loss must pull same-person pairs together and push
different-person pairs apart (this is what catches a flipped label convention)."""

import numpy as np
import torch

from facever.training import crops as crop_cache
from facever.training.config import TrainConfig
from facever.training.evaluation.lfw import LFW
from facever.training.train import build_network, embed_crops, train


def mean_distances(model, crops: np.ndarray, labels: np.ndarray, size: int) -> tuple[float, float]:
    embeddings = torch.from_numpy(embed_crops(model, crops, size))
    distance = torch.cdist(embeddings, embeddings)
    upper = torch.triu(torch.ones_like(distance, dtype=torch.bool), diagonal=1)
    same = torch.from_numpy(labels[:, None] == labels[None, :])
    return float(distance[upper & same].mean()), float(distance[upper & ~same].mean())


def test_contrastive_training_shrinks_same_and_grows_different_distances(small_lfw, tmp_path):
    config = TrainConfig.model_validate(
        {
            "data": {"lfw": str(small_lfw), "cache_dir": str(tmp_path / "cache"), "crop_pad": 4},
            "network": {"input_size": 32, "widths": [16, 32, 64], "blocks": [1, 1, 1], "embedding_size": 32},
            "batch": {"identities": 8, "per_identity": 4, "extra_images": 8},
            "loss": {"margin": 1.2},
            "optim": {"epochs": 30, "lr": 0.003},
            "run": {"seed": 3, "validate_every": 0, "checkpoint_every": 1000, "threads": 2},
        }
    )
    lfw = LFW(small_lfw)
    keys = [k for v in lfw.identities().values() for k in v]
    cache = crop_cache.load_or_build({k: lfw.path(k) for k in keys}, 32, 4, tmp_path / "cache")
    labels = np.array([k.split("/")[0] for k in cache.keys])

    # A freshly initialised network maps every face to nearly the same point, so the first steps of
    # any training spread everything apart. Measure from a briefly trained network instead, where
    # the embeddings are spread but not yet sorted by person, and train on from there.
    warm_up = config.model_copy(deep=True)
    warm_up.optim.epochs = 8
    start = train(warm_up, tmp_path / "warm-up")
    before = build_network(config)
    before.load_state_dict(torch.load(start, weights_only=False)["model"])
    same_before, different_before = mean_distances(before, cache.crops, labels, 32)
    config.run.init_from = str(start)

    checkpoint = train(config, tmp_path / "run")
    after = build_network(config)
    after.load_state_dict(torch.load(checkpoint, weights_only=False)["model"])
    same_after, different_after = mean_distances(after, cache.crops, labels, 32)

    moves = f"same {same_before:.3f} -> {same_after:.3f}, "
    moves += f"different {different_before:.3f} -> {different_after:.3f}"
    assert same_after < same_before, moves
    assert different_after > different_before, moves
    assert different_after - same_after > 0.3, moves
