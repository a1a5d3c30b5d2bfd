"""One pythae model trained and measured on data handed over by family_anchors.py (run with pythae's Python).

pythae lives in a side virtual environment (/tmp/venv-pythae, torch pinned to the main one's version),
so family_anchors.py writes the data to an .npz and the job to a .json and runs this script there:

    /tmp/venv-pythae/bin/python benchmarks/family_pythae_worker.py DATA.npz JOB.json RESULT.json

The network is the one aekit builds for the recipe: an MLP 784-512-256 (ReLU) to linear heads (mean and
log-variance, or the code), a mirrored decoder latent-256-512-784 with a sigmoid output for a Bernoulli
('bce') loss and none for a squared-error ('mse') loss. pythae's own BaseTrainer trains it (Adam, constant
lr, the job's batch size and epochs, keep_best_on_train so that no evaluation set is needed). Measured:
training wall seconds, test squared error per image of the decoded deterministic code (the posterior
mean; the quantized code for VQ-VAE), and for a Gaussian posterior with a Bernoulli decoder the IWAE bound
computed here with the same estimator as aekit.metrics.iwae_bound (VAMP: under its mixture prior; pythae's
_log_p_z omits the -D/2 log 2 pi that is added here).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn


def make_nets(latent: int, loss: str, variational: bool, one_code: bool = False):
    """one_code (VQ-VAE): the encoder returns the code as (B, latent, 1, 1), so pythae's quantizer sees one
    latent-dimensional vector per image (embedding_dim = latent), as aekit's vq does; a flat (B, latent) code
    is reshaped by pythae to latent positions of one scalar each (embedding_dim = 1)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())
            self.mu = nn.Linear(256, latent)
            self.logvar = nn.Linear(256, latent) if variational else None

        def forward(self, x):
            h = self.net(x)  # (B, 256)
            z = self.mu(h)  # (B, latent)
            out = ModelOutput(embedding=z.reshape(*z.shape, 1, 1) if one_code else z)  # (B, latent[, 1, 1])
            if self.logvar is not None:
                out["log_covariance"] = self.logvar(h)
            return out

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            layers = [nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784)]
            self.net = nn.Sequential(*layers, *([nn.Sigmoid()] if loss == "bce" else []))

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z.flatten(1)).reshape(-1, 1, 28, 28))

    return Encoder(), Decoder()


def build(job: dict):
    import pythae.models as pm

    cls_name, kw = job["pythae"], dict(job.get("config", {}))
    variational = cls_name not in ("AE", "WAE_MMD", "RAE_L2", "VQVAE")
    base = {"input_dim": (1, 28, 28), "latent_dim": job["latent"]}
    if cls_name not in ("AE", "WAE_MMD", "RAE_L2", "VQVAE"):
        base["reconstruction_loss"] = job["loss"]
    config_cls = getattr(pm, f"{cls_name}Config", None) or getattr(pm, f"{cls_name}_Config")  # VAEConfig, WAE_MMD_Config
    config = config_cls(**base, **kw)
    enc, dec = make_nets(job["latent"], job["loss"], variational, one_code=bool(job.get("one_code")))
    return getattr(pm, cls_name)(model_config=config, encoder=enc, decoder=dec), variational


@torch.no_grad()
def test_se(model, name: str, x: torch.Tensor) -> float:
    model.eval()
    total = 0.0
    for i in range(0, x.shape[0], 1000):
        xb = x[i:i + 1000]
        if name == "VQVAE":
            xh = model({"data": xb}).recon_x  # the quantized code decoded (eval: no EMA update)
        else:
            xh = model.decoder(model.encoder(xb).embedding).reconstruction
        total += float((xh - xb).pow(2).flatten(1).sum())
    return total / x.shape[0]


@torch.no_grad()
def iwae_nll(model, name: str, x: torch.Tensor, k: int, seed: int = 0, max_elements: int = 50_000) -> float:
    """-log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), Bernoulli p(x|z) (probabilities clamped to [1e-7, 1-1e-7])."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    b = max(1, max_elements // k)
    for i in range(0, x.shape[0], b):
        xb = x[i:i + b].flatten(1)  # (B, 784)
        enc = model.encoder(x[i:i + b])
        mu, logvar = enc.embedding, enc.log_covariance  # (B, D)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn((k, *mu.shape), generator=gen)
        z = mu + std * eps  # (K, B, D)
        zf = z.reshape(-1, mu.shape[1])
        p = model.decoder(zf).reconstruction.reshape(k, mu.shape[0], 784).clamp(1e-7, 1 - 1e-7)
        log_px = (xb * p.log() + (1 - xb) * (1 - p).log()).sum(-1)  # (K, B)
        if name == "VAMP":
            log_pz = torch.cat([model._log_p_z(zf[j:j + 4096]) for j in range(0, zf.shape[0], 4096)])
            log_pz = log_pz.view(k, -1) - 0.5 * mu.shape[1] * math.log(2 * math.pi)
        else:
            log_pz = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(-1)
        log_q = (-0.5 * (eps**2 + math.log(2 * math.pi)) - 0.5 * logvar).sum(-1)
        out.append(torch.logsumexp((log_px + log_pz - log_q).double(), dim=0) - math.log(k))
    return -float(torch.cat(out).mean())


def main(data_path: str, job_path: str, out_path: str) -> None:
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    job = json.loads(open(job_path).read())
    torch.set_num_threads(int(job.get("threads", 1)))
    data = np.load(data_path)
    x, x_test = torch.from_numpy(data["x_train"]), torch.from_numpy(data["x_test"])  # (N, 1, 28, 28) in [0, 1]
    torch.manual_seed(job["seed"])
    model, variational = build(job)
    with tempfile.TemporaryDirectory() as tmp:
        common = {"output_dir": tmp, "per_device_train_batch_size": job["batch_size"], "num_epochs": job["epochs"],
                  "keep_best_on_train": True, "seed": job["seed"], "no_cuda": True}
        if job["pythae"] == "RAE_L2":  # pythae's RAE-L2 puts its decoder penalty in the decoder optimizer's weight decay
            from pythae.trainers import CoupledOptimizerTrainer, CoupledOptimizerTrainerConfig

            cfg = CoupledOptimizerTrainerConfig(**common, encoder_learning_rate=job["lr"], decoder_learning_rate=job["lr"],
                                                decoder_optimizer_params={"weight_decay": job["config"]["reg_weight"]})
            trainer_cls = CoupledOptimizerTrainer
        else:
            cfg = BaseTrainerConfig(**common, learning_rate=job["lr"], optimizer_cls="Adam")
            trainer_cls = BaseTrainer
        t0 = time.perf_counter()
        trainer = trainer_cls(model=model, train_dataset=BaseDataset(x, torch.zeros(x.shape[0])), training_config=cfg)
        trainer.train()
        seconds = time.perf_counter() - t0
    model = trainer.model
    res = {"train_seconds": seconds, "test_se": test_se(model, job["pythae"], x_test),
           "params": sum(p.numel() for p in model.parameters())}
    if variational and job["loss"] == "bce" and job.get("iwae_k"):
        res["nll"] = iwae_nll(model, job["pythae"], x_test[:job["nll_images"]], job["iwae_k"])
    with open(out_path, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(*sys.argv[1:4])
