"""One rank of the distributed-training test (tests/training/test_distributed.py), run by torchrun.

    python -m torch.distributed.run --nproc_per_node 2 ddp_worker.py CONFIG_JSON OUT_DIR MAX_STEPS RECORD_DIR

It trains with ``facever.training.train.train`` and records, per rank, in RECORD_DIR: the network's
final state, every trained parameter (network and loss) and what wrapped them (``rank{N}.pt``), and
the sampler's RNG state before its first batch (``rank{N}-first-rng.pt``), which on a resume is the
state restored from the checkpoint.
"""

import copy
import os
import sys
from pathlib import Path

import torch

from facever.training import train as trainer
from facever.training.config import TrainConfig
from facever.training.data import PKSampler


def main() -> None:
    config_file, out_dir, max_steps, record = sys.argv[1:]
    record = Path(record)
    wrapped = {}

    wrap = trainer.Distributed.wrap

    def recording_wrap(self, module):
        wrapped["module"] = wrap(self, module)
        return wrapped["module"]

    close = trainer.Distributed.close

    def recording_close(self):
        module = wrapped["module"]
        trainee = getattr(module, "module", module)
        state = {k: v.detach().cpu().clone() for k, v in trainee.network.state_dict().items()}
        parameters = {k: v.detach().cpu().clone() for k, v in trainee.named_parameters()}
        torch.save(
            {"wrapper": type(module).__name__, "network": state, "parameters": parameters},
            record / f"rank{self.rank}.pt",
        )
        close(self)

    batch = PKSampler.batch

    def recording_batch(self):
        first = record / f"rank{os.environ['RANK']}-first-rng.pt"
        if not first.exists():
            torch.save(copy.deepcopy(self.rng.bit_generator.state), first)
        return batch(self)

    trainer.Distributed.wrap = recording_wrap
    trainer.Distributed.close = recording_close
    PKSampler.batch = recording_batch
    config = TrainConfig.model_validate_json(Path(config_file).read_text())
    trainer.train(config, Path(out_dir), max_steps=int(max_steps))


if __name__ == "__main__":
    main()
