"""Learned compression on MNIST, a quick honest check of the library core (not the issue-20 benchmark):
the rate-trained bottlenecks' estimated rate against the real range-coded payload, bits per pixel,
PSNR and coding time on held-out test images.

    python benchmarks/learned_rate_check.py [--steps 300] [--lmbda 1300] [--test-n 200]

Model: conv backbone, fully convolutional, GDN, channels 32, 32 (28 -> 14 -> 7), 8 code channels;
bottleneck entropy or hyperprior; Gaussian likelihood sigma = 1, so loss = bits + lmbda * SSE / 2
per image (lmbda = 2 * 255^2 * lambda of CompressAI's `bpp + lambda * 255^2 * MSE`; 1300 ~ 0.01).
Training: Adam 1e-3 on the model's loss; the entropy model's quantiles on bottleneck.aux_loss()
with their own Adam (lr 1e-2), one step each per batch of 32, on the first 5000 training images.
Coding: every test image in its own container (payload and whole file), and all in one stream.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import aekit
from aekit.data import load_data
from aekit.tasks.compression import LearnedCodec, compress_learned, decompress_learned, rate_bits


def train(bottleneck: str, x: torch.Tensor, *, steps: int, lmbda: float, seed: int = 0):
    model = aekit.build(input_shape=(1, 28, 28), latent_dim=8, seed=seed, bottleneck={bottleneck: {"lmbda": lmbda}},
                        backbone={"conv": {"channels": [32, 32], "activation": "gdn", "fully_convolutional": True}})
    aux = model.bottleneck.aux_parameters()
    main = [p for p in model.parameters() if all(p is not a for a in aux)]
    opt, aux_opt = torch.optim.Adam(main, lr=1e-3), torch.optim.Adam(aux, lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the training noise
    model.train()
    for _ in range(steps):
        batch = x[torch.randint(0, x.shape[0], (32,), generator=g)]
        opt.zero_grad()
        model(batch).loss.backward()
        opt.step()
        aux_opt.zero_grad()
        model.bottleneck.aux_loss().backward()
        aux_opt.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lmbda", type=float, default=1300.0)
    ap.add_argument("--test-n", type=int, default=200)
    ap.add_argument("--data-dir", default="/work/shared/data")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_data("mnist", data_dir=args.data_dir)
    x_train = torch.as_tensor(ds.train[:5000]).float().reshape(-1, 1, 28, 28)
    x_test = torch.as_tensor(ds.test[:args.test_n]).float().reshape(-1, 1, 28, 28)
    rows = []
    for bottleneck in ("entropy", "hyperprior"):
        t0 = time.perf_counter()
        model = train(bottleneck, x_train, steps=args.steps, lmbda=args.lmbda)
        train_s = time.perf_counter() - t0
        est = rate_bits(model, x_test)
        t0 = time.perf_counter()
        codec = LearnedCodec(model)  # the coding tables, once per model (shared by encoder and decoder)
        tables_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        blobs = [compress_learned(model, x_test[i:i + 1], codec=codec) for i in range(x_test.shape[0])]
        enc_s = (time.perf_counter() - t0) / len(blobs)
        t0 = time.perf_counter()
        decoded = [decompress_learned(model, b, codec=codec) for b in blobs]
        dec_s = (time.perf_counter() - t0) / len(blobs)
        x_hat = torch.cat([d[0] for d in decoded]).clamp(0, 1)
        payload = sum(d[1]["payload_bytes"] for d in decoded)
        one = decompress_learned(model, compress_learned(model, x_test))[1]["payload_bytes"]
        mse = ((x_hat - x_test) ** 2).flatten(1).mean(1)
        n, pix = x_test.shape[0], 28 * 28
        rows.append({"bottleneck": bottleneck, "lmbda": args.lmbda, "steps": args.steps, "train_s": round(train_s, 1),
                     "estimated_bpp": est / (n * pix), "payload_bpp_per_image_files": 8 * payload / (n * pix),
                     "file_bpp_per_image_files": 8 * sum(map(len, blobs)) / (n * pix),
                     "payload_bpp_one_stream": 8 * one / (n * pix),
                     "one_stream_over_estimate": 8 * one / est - 1,
                     "psnr": float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()),
                     "tables_ms": 1e3 * tables_s, "encode_ms_per_image": 1e3 * enc_s, "decode_ms_per_image": 1e3 * dec_s})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
