"""The trainer: a Siamese embedding network fitted with contrastive loss on identity-balanced batches.

One process on CPU, or several under ``torchrun`` (one per GPU, or CPU processes with gloo), the
network and the loss's own parameters wrapped in ``torch.nn.parallel.DistributedDataParallel``. Rank 0
builds the caches while the others wait, then every rank reads them. It checkpoints regularly (with
every rank's sampler and RNG state) and resumes from the last checkpoint in its output folder, so a
stopped run continues where it was. At the end it exports the ONNX model with its calibrated threshold.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from facever.model.matching import pair_scores
from facever.training import crops as crop_cache
from facever.training.config import TrainConfig
from facever.training.data import PKSampler, augment, centre_crop, split_people, to_channels
from facever.training.evaluation import protocol
from facever.training.evaluation.lfw import LFW
from facever.training.losses import ArcFaceLoss, BatchHardTripletLoss, ContrastiveLoss, DistillationLoss
from facever.training.networks import build_network, crop_template
from facever.training.networks.dlib_resnet import DlibResNet
from facever.training.networks.facever_small import EmbeddingNet

log = logging.getLogger("facever.training")

CHECKPOINT = "checkpoint.pt"
T = TypeVar("T")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Objective(torch.nn.Module):
    """Contrastive loss plus the optional terms, each with its weight (the teacher's ramped up)."""

    def __init__(self, config: TrainConfig, classes: int):
        super().__init__()
        loss = config.loss
        self.config = loss
        self.contrastive = ContrastiveLoss(loss.margin, loss.hard_negatives)
        self.triplet = BatchHardTripletLoss(loss.triplet_margin) if loss.triplet_weight else None
        self.arcface = (
            ArcFaceLoss(config.network.embedding_size, classes, loss.arcface_scale, loss.arcface_margin)
            if loss.arcface_weight
            else None
        )
        self.teacher = DistillationLoss(loss.teacher_mode) if loss.teacher_weight else None

    def forward(self, features, labels, teacher, progress: float) -> dict[str, torch.Tensor]:
        embeddings = torch.nn.functional.normalize(features, dim=1)
        terms = {"contrastive": self.config.contrastive_weight * self.contrastive(embeddings, labels)}
        if self.triplet is not None:
            terms["triplet"] = self.config.triplet_weight * self.triplet(embeddings, labels)
        if self.arcface is not None:
            terms["arcface"] = self.config.arcface_weight * self.arcface(features, labels)
        if self.teacher is not None:
            ramp = min(1.0, progress / max(self.config.teacher_warmup_fraction, 1e-9))
            terms["teacher"] = self.config.teacher_weight * ramp * self.teacher(embeddings, teacher)
        terms["total"] = sum(terms.values())
        return terms


class Trainee(torch.nn.Module):
    """The network and the objective as one module, so that DistributedDataParallel, which hooks
    ``forward`` only, synchronises the gradients of both (the network's and e.g. ArcFace's class
    centres). Checkpoints, validation and export use ``network`` itself, never this wrapper."""

    def __init__(self, network: EmbeddingNet | DlibResNet, objective: Objective):
        super().__init__()
        self.network = network
        self.objective = objective

    def forward(
        self, pixels, labels, teacher, progress: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.network.features(pixels)
        return features, self.objective(features, labels, teacher, progress)


def learning_rate(step: int, total: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    warmup = max(1, int(total * config.optim.warmup_fraction))
    if step < warmup:
        return config.optim.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.optim.lr * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def embed_crops(model: torch.nn.Module, crops: np.ndarray, size: int, batch: int = 256) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    channels = getattr(model, "input_channels", 1)
    out = [
        model(to_channels(centre_crop(torch.from_numpy(crops[i : i + batch]), size), channels).to(device))
        .cpu()
        .numpy()
        for i in range(0, len(crops), batch)
    ]
    model.train()
    return np.concatenate(out)


def validate(model, cache, index, pairs, size) -> dict:
    """Accuracy (best threshold) and AUC on the calibration folds' official pairs, as the evaluation
    scores them: a photo in which the detector found no face (the service would refuse it) fails its
    pairs, and AUC is on the pairs that were scored."""
    keys = sorted({k for p in pairs for k in (p.first, p.second)})
    rows = [index[k] for k in keys]
    embeddings = embed_crops(model, cache.crops[rows], size)
    embeddings[~cache.found[rows]] = np.nan
    scores = pair_scores(dict(zip(keys, embeddings, strict=True)), pairs)
    same = np.array([p.same for p in pairs])
    _, accuracy = protocol.best_threshold(protocol.failed_as_wrong(scores, same), same)
    scored = ~np.isnan(scores)
    return {
        "val_accuracy": accuracy,
        "val_auc": protocol.auc(scores[scored], same[scored]),
        "val_failed_pairs": int((~scored).sum()),
    }


class Distributed:
    """The process group: torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them a single process.

    nccl on GPUs (one per process), gloo on CPU. The timeout is long because the other ranks wait at
    a barrier while rank 0 builds the caches (detection over all of LFW can take a while).
    """

    def __init__(self, timeout: timedelta = timedelta(hours=3)):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
        if self.world > 1:
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timeout)
        self.device = torch.device(
            f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
        )

    @property
    def main(self) -> bool:
        return self.rank == 0

    def once(self, build: Callable[[], T]) -> T:
        """``build()`` on rank 0 first while the others wait, then on the others: for a cache that
        rank 0 writes and the others then only read."""
        if self.world > 1 and not self.main:
            dist.barrier()
        result = build()
        if self.world > 1 and self.main:
            dist.barrier()
        return result

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` in DistributedDataParallel when there are several processes (it broadcasts rank
        0's parameters and buffers now, and averages the gradients in ``backward``)."""
        if self.world == 1:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value`` on rank 0 (in rank order), None on the others."""
        if self.world == 1:
            return [value]
        values: list[T] | None = [value] * self.world if self.main else None  # overwritten by the gather
        dist.gather_object(value, values, dst=0)
        return values

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


def train(config: TrainConfig, out_dir: Path, max_steps: int | None = None) -> Path:
    """Train (resuming from ``out_dir`` when a checkpoint is there); returns the checkpoint path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ddp = Distributed()
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    seed_everything(config.run.seed + ddp.rank)

    lfw = LFW(Path(config.data.lfw))
    split = split_people(lfw, config.data.test_folds, config.data.calibration_folds)
    training_people = split.train
    if config.data.max_train_people:
        most = sorted(training_people, key=lambda p: (-len(training_people[p]), p))[
            : config.data.max_train_people
        ]
        training_people = {p: training_people[p] for p in sorted(most)}
    checkpoint_path = out_dir / CHECKPOINT
    if config.optim.epochs == 0:
        # Nothing to fit: the (pretrained) network as it is, e.g. dlib's imported weights.
        if ddp.main and not checkpoint_path.exists():
            model = build_network(config)
            save_checkpoint(checkpoint_path, model, None, None, [rng_state(None)], 0, [], config)
        ddp.close()
        return checkpoint_path
    validating = config.run.validate_every > 0
    size, pad = config.network.input_size, config.data.crop_pad
    needed = [training_people] + ([split.calibration] if validating else [])
    keys = {k: lfw.path(k) for people in needed for v in people.values() for k in v}
    cache = ddp.once(
        lambda: crop_cache.load_or_build(
            keys, size, pad, Path(config.data.cache_dir), points=crop_template(config, pad)
        )
    )
    index = cache.index()

    train_keys = [k for v in training_people.values() for k in v]
    people = sorted(training_people)
    person_label = {p: i for i, p in enumerate(people)}
    labels = np.array([person_label[k.split("/")[0]] for k in train_keys])
    crops = torch.from_numpy(cache.crops[[index[k] for k in train_keys]])
    teacher = ddp.once(lambda: load_teacher(config, lfw, train_keys))
    calibration_pairs = [p for p in lfw.pairs() if p.fold in config.data.calibration_folds]

    # channels-last convolutions run ~1.4x faster on CPU (oneDNN) and on GPU tensor cores
    # (Module.to takes memory_format; torch's overloads omit it)
    model = build_network(config).to(ddp.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    channels = getattr(model, "input_channels", 1)
    objective = Objective(config, len(people)).to(ddp.device)
    if config.optim.train_only is not None:
        prefixes = tuple(config.optim.train_only)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith(prefixes))
    parameters = [p for p in model.parameters() if p.requires_grad] + list(objective.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    sampler = PKSampler(labels, config.batch, config.run.seed + 1000 * ddp.rank)
    total_steps = max(1, round(config.optim.epochs * len(train_keys) / (sampler.batch_size * ddp.world)))
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)

    step, history = 0, []
    if config.run.init_from and not checkpoint_path.exists():
        state = torch.load(config.run.init_from, map_location="cpu", weights_only=False)
        model.load_state_dict(state.get("model", state))
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state, sampler, ddp.rank)
        step, history = state["step"], state["history"]
        if ddp.main:
            log.info("resumed from %s at step %d", checkpoint_path, step)
    # After loading: DDP broadcasts rank 0's parameters and buffers when it wraps them.
    trainee = ddp.wrap(Trainee(model, objective))

    generator = torch.Generator().manual_seed(config.run.seed * 7919 + step + ddp.rank)
    log_file = (out_dir / "log.jsonl").open("a") if ddp.main else None
    bar = tqdm(
        total=total_steps, initial=step, desc="train", unit="step", disable=not ddp.main, dynamic_ncols=True
    )
    started, seen = time.perf_counter(), 0
    model.train()
    while step < total_steps:
        batch = sampler.batch()
        pixels = to_channels(augment(crops[batch], size, config.augment, generator), channels)
        pixels = pixels.to(ddp.device, memory_format=torch.channels_last)
        batch_labels = torch.from_numpy(labels[batch]).to(ddp.device)
        batch_teacher = torch.from_numpy(teacher[batch]).to(ddp.device) if teacher is not None else None
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total_steps, config)
        features, terms = trainee(pixels, batch_labels, batch_teacher, step / total_steps)
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()  # under DDP this also averages the gradients across processes
        optimizer.step()
        step += 1
        seen += len(batch) * ddp.world

        if log_file is not None:  # rank 0
            record = {
                "step": step,
                "lr": optimizer.param_groups[0]["lr"],
                **{k: v.item() for k, v in terms.items()},
            }
            if step % config.run.log_every == 0 or step == total_steps:
                record.update(pair_accuracy(features.detach(), batch_labels, config.loss.margin))
                record["images_per_s"] = seen / (time.perf_counter() - started)
                bar.set_postfix(
                    loss=f"{record['total']:.3f}",
                    pair_acc=f"{record['pair_accuracy']:.3f}",
                    img_s=f"{record['images_per_s']:.0f}",
                )
            if validating and (step % config.run.validate_every == 0 or step == total_steps):
                record.update(validate(model, cache, index, calibration_pairs, size))
                accuracy, auc = record["val_accuracy"], record["val_auc"]
                bar.write(f"step {step}: validation accuracy {accuracy:.4f} auc {auc:.4f}")
            history.append(record) if "val_accuracy" in record else None
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if step % config.run.checkpoint_every == 0 or step == total_steps:
            rng_states = ddp.gather(rng_state(sampler))  # every rank takes part; rank 0 writes
            if ddp.main:
                save_checkpoint(
                    checkpoint_path, model, objective, optimizer, rng_states, step, history, config
                )
        bar.update(1)
    bar.close()
    if log_file:
        log_file.close()
    ddp.barrier()  # the checkpoint is written when any rank returns
    ddp.close()
    return checkpoint_path


def pair_accuracy(features: torch.Tensor, labels: torch.Tensor, margin: float) -> dict:
    """Share of the batch's pairs on the right side of half the margin (a training-progress signal)."""
    embeddings = torch.nn.functional.normalize(features, dim=1)
    distance = torch.cdist(embeddings, embeddings)
    upper = torch.triu(torch.ones_like(distance, dtype=torch.bool), diagonal=1)
    same = labels[:, None] == labels[None, :]
    correct = (distance < margin / 2) == same
    return {
        "pair_accuracy": float(correct[upper].float().mean()),
        "same_distance": float(distance[upper & same].mean()),
        "different_distance": float(distance[upper & ~same].mean()),
    }


def rng_state(sampler: PKSampler | None) -> dict:
    """This process's sampler generator and torch RNG state, as the checkpoint keeps them per rank."""
    return {"sampler": sampler.rng if sampler is not None else None, "torch": torch.get_rng_state()}


def restore_rng_state(state: dict, sampler: PKSampler, rank: int) -> None:
    """Give this rank back its own sampler and torch RNG state from the checkpoint.

    A checkpoint from a run with fewer processes has no state for the new ranks: they keep their
    fresh seeds. One from before per-rank states (``sampler_rng``) held rank 0's only.
    """
    states = state.get("rng_states") or [
        {"sampler": state.get("sampler_rng"), "torch": state.get("torch_rng")}
    ]
    if rank >= len(states):
        log.warning("checkpoint has no sampler state for rank %d: it starts from its seed", rank)
        return
    if states[rank]["sampler"] is not None:
        sampler.rng = states[rank]["sampler"]
    if states[rank]["torch"] is not None:
        torch.set_rng_state(states[rank]["torch"])


def save_checkpoint(path, model, objective, optimizer, rng_states, step, history, config) -> None:
    """``rng_states``: every rank's ``rng_state``, in rank order."""
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "objective": objective.state_dict() if objective is not None else None,
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "rng_states": rng_states,
            "step": step,
            "history": history,
            "config": config.model_dump(),
        },
        tmp,
    )
    tmp.replace(path)


def load_teacher(config: TrainConfig, lfw: LFW, train_keys: list[str]) -> np.ndarray | None:
    """The teacher's embedding for every training image (rows of NaN where it found no face).

    The cache covers every LFW image (the benchmarks use it too); only training images are read here.
    """
    if not config.loss.teacher_weight:
        return None
    from facever.training import teacher

    everything = {k: lfw.path(k) for keys in lfw.identities().values() for k in keys}
    cached = teacher.load_or_build(everything, Path(config.data.cache_dir))
    position = {k: i for i, k in enumerate(cached["keys"])}
    rows = [position[k] for k in train_keys]
    embeddings = cached["embeddings"][rows].astype(np.float32)
    found = cached["found"][rows]
    # dlib's descriptors share a large common component (cosine ~0.84 between different people);
    # centred on the training mean, different people are near-orthogonal, as contrastive loss wants.
    embeddings -= embeddings[found].mean(0)
    embeddings[~found] = np.nan
    return embeddings
