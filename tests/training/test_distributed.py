"""Distributed training under torchrun: two CPU processes (gloo) with DistributedDataParallel.

Both ranks must end with the same weights, rank 0 alone builds the crop cache, the checkpoint keeps
each rank's sampler state, and a resume gives each rank back its own.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facever.live_server import free_port
from facever.training.config import TrainConfig

WORKER = Path(__file__).with_name("ddp_worker.py")

pytestmark = pytest.mark.slow


def torchrun(config: Path, out: Path, max_steps: int, record: Path) -> None:
    record.mkdir(parents=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(WORKER), str(config), str(out), str(max_steps), str(record),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def assert_in_step(ranks: list[dict]) -> None:
    """Every parameter, the network's and the ArcFace head's, is the same on both ranks. (BatchNorm's
    running statistics are not: DDP broadcasts rank 0's buffers before each forward, and each rank
    then updates them with its own batch; rank 0's are the ones checkpointed.)"""
    assert any(name.startswith("objective.arcface") for name in ranks[0]["parameters"])
    for name, value in ranks[0]["parameters"].items():
        assert torch.equal(value, ranks[1]["parameters"][name]), f"{name} differs between the ranks"


def test_two_cpu_processes_train_in_step_and_resume_with_their_own_sampler_state(tiny_lfw, tmp_path):
    config = TrainConfig.model_validate(
        {
            "data": {"lfw": str(tiny_lfw), "cache_dir": str(tmp_path / "cache"), "crop_pad": 2},
            "network": {"input_size": 32, "widths": [8, 16], "blocks": [1, 1], "embedding_size": 16},
            "batch": {"identities": 4, "per_identity": 2, "extra_images": 4},
            "loss": {"arcface_weight": 0.5},  # the loss's own parameters must stay in step too
            "optim": {"epochs": 100, "lr": 0.003},
            "run": {"seed": 5, "validate_every": 0, "checkpoint_every": 1000, "threads": 1},
        }
    )
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json())
    out = tmp_path / "run"

    torchrun(config_file, out, 3, tmp_path / "first")
    ranks = [torch.load(tmp_path / "first" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["wrapper"] for r in ranks] == ["DistributedDataParallel"] * 2
    assert_in_step(ranks)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert checkpoint["step"] == 3
    for name, value in checkpoint["model"].items():
        assert torch.equal(value, ranks[0]["network"][name])
    states = [s["sampler"].bit_generator.state for s in checkpoint["rng_states"]]
    assert len(states) == 2 and states[0] != states[1], "each rank draws its own batches"
    # one crop cache, built once (by rank 0), and no temporary file left behind
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".npz"]

    torchrun(config_file, out, 5, tmp_path / "resumed")
    for rank in (0, 1):
        restored = torch.load(tmp_path / "resumed" / f"rank{rank}-first-rng.pt", weights_only=False)
        assert restored == states[rank], f"rank {rank} did not resume from its own sampler state"
    ranks = [torch.load(tmp_path / "resumed" / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert_in_step(ranks)
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == 5
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert np.isfinite([r["total"] for r in records]).all()
