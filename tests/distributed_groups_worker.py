"""One rank of tests/test_step_contract.py's data-parallel check (not a test module itself).

`RANK=r WORLD_SIZE=2 MASTER_ADDR=... MASTER_PORT=... python tests/distributed_groups_worker.py OUT_DIR`
trains `TwoGroups` (two optimizer groups, labels in dict batches) and a small U-Net segmenter (crops and
augmentation as a batch transform) with the DistributedTrainer over one gloo group; rank 0 writes the
final weights to OUT_DIR/weights.safetensors and OUT_DIR/unet.safetensors.
"""

from __future__ import annotations

import faulthandler
import sys

import torch
import torch.nn.functional as F
from torch import nn

from aekit.step import OptimizerGroup, StepOutput


class TwoGroups(nn.Module):
    """Deterministic (no noise): a labelled, weighted reconstruction and a discriminator stepped twice per batch."""

    def __init__(self) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.enc, self.dec, self.disc = nn.Linear(4, 2), nn.Linear(2, 4), nn.Linear(2, 1)

    def training_step(self, batch, group: str = "main") -> StepOutput:
        x, y = batch["x"], batch["y"]
        z = self.enc(x)
        if group == "disc":
            loss = F.softplus(-self.disc(x[:, :2])).mean() + F.softplus(self.disc(z)).mean()
            return StepOutput(loss=loss, terms={"gan": loss.detach()})
        w = (y % 3 + 1).float()  # (B,) a label-dependent weight: labels must stay with their rows
        rec = (w * (self.dec(z) - x).pow(2).sum(1)).mean()
        adv = F.softplus(-self.disc(z)).mean()
        return StepOutput(loss=rec + 0.1 * adv, terms={"rec": rec, "adv": adv})

    def validation_step(self, batch) -> StepOutput:
        return self.training_step(batch)

    def optimizer_groups(self) -> list[OptimizerGroup]:
        return [OptimizerGroup("main", list(self.enc.parameters()) + list(self.dec.parameters())),
                OptimizerGroup("disc", list(self.disc.parameters()), steps=2,
                               optimizer=lambda p: torch.optim.SGD(p, lr=0.05))]


def data() -> dict:
    g = torch.Generator().manual_seed(3)
    return {"x": torch.randn(36, 4, generator=g), "y": torch.arange(36)}


def config():
    from aekit.training.trainer import TrainConfig

    return TrainConfig(epochs=2, batch_size=8, lr=1e-2, warmup_steps=2, progress=False, device="cpu")


def segmenter():
    from aekit.tasks.segmentation import SegmentationUNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SegmentationUNet(depth=1, width=3, norm="none")  # no BatchNorm: its statistics are per rank


def segment_data():
    from aekit.tasks.segmentation import cells_set

    return cells_set(8, size=20, seed=1)


# dice_weight 0: the soft Dice pools its sums over the batch, so under data parallelism it is each rank's
# shard's Dice (as in any DDP run); the per-pixel BCE is a mean that splits exactly over equal shards
SEGMENT = dict(epochs=2, batch_size=4, crop=16, augment=["flip", "rotate", "elastic"], lr=1e-2, dice_weight=0.0)


def main() -> None:
    faulthandler.dump_traceback_later(240, exit=True)
    import torch.distributed as dist
    from safetensors.torch import save_file

    from aekit.training.distributed import DistributedTrainer, context_from_env

    dist.init_process_group("gloo", init_method="env://")
    model = TwoGroups()
    DistributedTrainer(model, config(), dist_ctx=context_from_env()).fit(data())
    from aekit.tasks.segmentation import fit_segmenter

    unet = segmenter()
    fit_segmenter(unet, segment_data(), dist_ctx=context_from_env(), **SEGMENT)
    if dist.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{sys.argv[1]}/weights.safetensors")
        save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, f"{sys.argv[1]}/unet.safetensors")
    from worker_exit import end_worker

    end_worker()


if __name__ == "__main__":
    main()
