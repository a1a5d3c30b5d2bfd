"""CompressAI's FactorizedPrior (Balle et al. 2018, 'bmshj2018-factorized') on data handed over by
compression_learned.py, run with the side environment's Python (CompressAI must not change the main torch):

    /tmp/venv-compressai/bin/python benchmarks/compressai_worker.py JOB.npz OUT.npz

JOB.npz holds `train` (n, 1, P, P) uint8 patches (used as value / 255), `test_<i>` (H, W) uint8 images and `config`
(a JSON string: N, M, lmbdas, steps, batch, lr, aux_lr, seed). The model is CompressAI's FactorizedPrior with its
first and last convolution taking one channel (grayscale); everything else is the library's (GDN, 5 x 5 stride-2
convolutions, EntropyBottleneck, its range coder 'ans'). Training is the one compression_learned.py gives aekit:
the same patches, the same batch indices (torch.Generator seeded with `seed`), Adam(lr) on
loss = mean over the batch of [bits + lmbda * SSE / 2] (aekit's rate + lmbda * Gaussian NLL with sigma 1, less its
constant) and a second Adam(aux_lr) on the entropy bottleneck's auxiliary (quantile) loss, `steps` steps.
Testing: model.update(force=True), each image edge-padded to a multiple of 16, model.compress / decompress, cropped,
rounded to 8 bits. OUT.npz gets, per lambda index k and image i: dec_<k>_<i> (uint8), payload_<k>_<i> (bytes of the
range-coded string), encode_<k>_<i> / decode_<k>_<i> (seconds), train_<k> (CPU seconds of training).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

torch.set_num_threads(1)

from compressai.layers import GDN  # noqa: E402
from compressai.models import FactorizedPrior  # noqa: E402
from compressai.models.utils import conv, deconv  # noqa: E402


def grayscale_factorized_prior(n: int, m: int) -> FactorizedPrior:
    model = FactorizedPrior(n, m)
    model.g_a[0] = conv(1, n)  # 3 -> 1 input channel
    model.g_s[-1] = deconv(n, 1)  # 3 -> 1 output channel
    assert isinstance(model.g_a[1], GDN)
    return model


def train(model: FactorizedPrior, x: torch.Tensor, *, lmbda: float, steps: int, batch: int, lr: float, aux_lr: float,
          seed: int) -> FactorizedPrior:
    aux = [p for name, p in model.named_parameters() if name.endswith("quantiles")]
    main = [p for name, p in model.named_parameters() if not name.endswith("quantiles")]
    opt = torch.optim.Adam(main, lr=lr)
    aux_opt = torch.optim.Adam(aux, lr=aux_lr)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        b = x[torch.randint(0, x.shape[0], (batch,), generator=g)]  # (batch, 1, P, P)
        out = model(b)
        bits = -torch.log2(out["likelihoods"]["y"]).flatten(1).sum(1)  # (batch,) bits per image
        sse = ((out["x_hat"] - b) ** 2).flatten(1).sum(1)  # (batch,)
        loss = (bits + lmbda * sse / 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux_opt.zero_grad()
        model.aux_loss().backward()
        aux_opt.step()
    return model.eval()


@torch.no_grad()
def code(model: FactorizedPrior, a: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    h, w = a.shape
    x = torch.from_numpy(a.astype(np.float32) / 255)[None, None]  # (1, 1, H, W)
    x = F.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate")
    t0 = time.perf_counter()
    enc = model.compress(x)
    t1 = time.perf_counter()
    x_hat = model.decompress(enc["strings"], enc["shape"])["x_hat"][..., :h, :w]
    t2 = time.perf_counter()
    dec = np.floor(x_hat[0, 0].double().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    return dec, sum(len(s) for strings in enc["strings"] for s in strings), t1 - t0, t2 - t1


def main(src: str, dst: str) -> None:
    job = np.load(src)
    cfg = json.loads(str(job["config"]))
    x = torch.from_numpy(job["train"]).float() / 255  # (n, 1, P, P) as compression_learned.py makes it
    tests = [job[k] for k in sorted((k for k in job.files if k.startswith("test_")), key=lambda k: int(k[5:]))]
    out = {}
    for k, lmbda in enumerate(cfg["lmbdas"]):
        torch.manual_seed(cfg["seed"])
        model = grayscale_factorized_prior(cfg["N"], cfg["M"])
        t0 = time.process_time()
        train(model, x, lmbda=lmbda, steps=cfg["steps"], batch=cfg["batch"], lr=cfg["lr"], aux_lr=cfg["aux_lr"],
              seed=cfg["seed"])
        out[f"train_{k}"] = np.array(time.process_time() - t0)
        model.update(force=True)
        for i, a in enumerate(tests):
            dec, payload, te, td = code(model, a)
            out[f"dec_{k}_{i}"], out[f"payload_{k}_{i}"] = dec, np.array(payload)
            out[f"encode_{k}_{i}"], out[f"decode_{k}_{i}"] = np.array(te), np.array(td)
        print(f"compressai lmbda {lmbda}: trained in {float(out[f'train_{k}']):.0f} s", file=sys.stderr, flush=True)
    np.savez(dst, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
