"""Train an SAE of another library on activations from .npy files; run inside that library's own environment.

Used by benchmarks/sae_mnist.py (the side environments /tmp/venv-dictionary-learning and /tmp/venv-sae-lens,
torch 2.13.0). Imports only torch, numpy and the library. Writes OUT.json (L0 and dead fraction on the test rows,
training seconds and samples per second) and OUT_xhat.npy (the test rows' reconstructions), from which the caller
computes FVU and the loss recovered with the same code as for aekit's SAEs.

    python sae_external_worker.py --lib dictionary_learning --kind topk --train tr.npy --test te.npy --k 16 \
        --latents 1024 --epochs 5 --batch-size 512 --lr 1e-3 --warmup 50 --seed 0 --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def batches(x: torch.Tensor, batch: int, epochs: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0] - batch + 1, batch):  # whole batches only
            yield x[perm[i:i + batch]]


def train_dictionary_learning(args, x):
    from dictionary_learning.training import trainSAE
    from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer
    from dictionary_learning.trainers.top_k import TopKTrainer

    steps = (x.shape[0] // args.batch_size) * args.epochs
    trainer = {"topk": TopKTrainer, "batch_topk": BatchTopKTrainer}[args.kind]
    config = {"trainer": trainer, "steps": steps, "activation_dim": x.shape[1], "dict_size": args.latents, "k": args.k,
              "layer": 0, "lm_name": "mnist_mlp", "lr": args.lr, "warmup_steps": args.warmup, "seed": args.seed,
              "device": "cpu", "threshold_start_step": min(1000, steps // 4)}
    # more passes than trained: normalize_activations first draws 100 batches for its norm estimate
    per_epoch = x.shape[0] // args.batch_size
    data = batches(x, args.batch_size, args.epochs + -(-100 // per_epoch), args.seed)
    holder = {"updates": 0}
    t0 = time.perf_counter()
    # trainSAE builds the trainers itself; capture the instance through the class's __init__
    init = trainer.__init__

    def capture(self, *a, **kw):
        init(self, *a, **kw)
        holder["trainer"] = self
        update = self.update

        def counted(step, act):  # the optimizer steps it really takes
            holder["updates"] += 1
            return update(step, act)

        self.update = counted

    trainer.__init__ = capture
    try:
        trainSAE(data, [config], steps=steps, normalize_activations=True, device="cpu", verbose=False)
    finally:
        trainer.__init__ = init
    seconds = time.perf_counter() - t0
    ae = holder["trainer"].ae.eval()
    if holder["updates"] != steps:
        raise SystemExit(f"dictionary_learning took {holder['updates']} steps, not {steps}")
    return seconds, steps, (lambda rows: ae.encode(rows)), (lambda z: ae.decode(z))


def train_sae_lens(args, x):
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    if args.kind != "topk":
        raise SystemExit("sae_lens: only --kind topk in this benchmark")
    steps = (x.shape[0] // args.batch_size) * args.epochs
    torch.manual_seed(args.seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=args.latents, k=args.k,
                                                normalize_activations="expected_average_only_in"))
    cfg = SAETrainerConfig(n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False,
                           total_training_samples=steps * args.batch_size, device="cpu", autocast=False, lr=args.lr,
                           lr_end=args.lr, lr_scheduler_name="constant", lr_warm_up_steps=args.warmup, adam_beta1=0.9,
                           adam_beta2=0.999, lr_decay_steps=0, n_restart_cycles=1,
                           train_batch_size_samples=args.batch_size, dead_feature_window=1000,
                           feature_sampling_window=2000,
                           logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1),
                           n_batches_for_norm_estimate=min(100, x.shape[0] // args.batch_size))
    t0 = time.perf_counter()
    SAETrainer(cfg=cfg, sae=sae, data_provider=batches(x, args.batch_size, args.epochs + 1, args.seed),
               save_checkpoint_fn=lambda path: None).fit()
    seconds = time.perf_counter() - t0
    sae.eval()
    return seconds, steps, (lambda rows: sae.encode(rows)), (lambda z: sae.decode(z))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", choices=("dictionary_learning", "sae_lens"), required=True)
    ap.add_argument("--kind", choices=("topk", "batch_topk"), required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--latents", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = torch.from_numpy(np.load(args.train)).float()
    test = torch.from_numpy(np.load(args.test)).float()
    fn = train_dictionary_learning if args.lib == "dictionary_learning" else train_sae_lens
    seconds, steps, encode, decode = fn(args, x)
    with torch.no_grad():
        z = torch.cat([encode(test[i:i + 2048]) for i in range(0, test.shape[0], 2048)])
        x_hat = torch.cat([decode(z[i:i + 2048]) for i in range(0, z.shape[0], 2048)])
    np.save(args.out + "_xhat.npy", x_hat.numpy().astype(np.float32))
    fired = (z != 0)
    info = {"lib": args.lib, "kind": args.kind, "k": args.k, "steps": steps, "samples": steps * args.batch_size,
            "seconds": round(seconds, 2), "samples_per_s": round(steps * args.batch_size / seconds, 1),
            "l0": float(fired.sum(1).double().mean()), "dead_fraction": float((~fired.any(0)).double().mean())}
    with open(args.out + ".json", "w") as f:
        json.dump(info, f)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
