"""Validation images only: does the geometric self-ensemble, or training on the 8 turns, help the default image DAE?

The experiment behind the image DAE's denoising ensemble (aekit.training.data_defaults, denoise_ensemble) and
behind leaving `--augment dihedral` off by default. No test image of benchmarks/denoising_defaults.py is used:

  photos  the 12 training photographs of denoising_defaults.py; every 4th (astronaut, grass,
          immunohistochemistry) is held out as validation photographs, the other 9 give 4,000
          training patches (32 x 32) and 100 patches for the trainer's validation split; scored on
          300 patches of the 3 validation photographs
  mnist   the benchmark's 4,000 MNIST training images; MNIST validation images 0-99 for the
          trainer, 100-399 scored

Each variant is `aekit train dae` with its defaults on the training images (`base`), or on every
training image in all 8 orientations (`aug`: the 8x set, shuffled, the same 5,000 steps; an
equivalent of `--augment dihedral`, which turns each image at random instead), then denoised at
sigma 0.1 / 0.3 / 0.5 (Gaussian, clipped) in one pass (`plain`) and as the mean over the 8 turned
copies (`tta8`, aekit.training.dihedral.self_ensemble). BM3D (pip bm3d) with sigma as given and
the clipped-noise correction is printed beside them for scale, untuned.

    python benchmarks/denoising_ensemble_validation.py --variants base,aug --data photos
    python benchmarks/denoising_ensemble_validation.py --variants base --data mnist
    python benchmarks/denoising_ensemble_validation.py --quick          # smoke run, no results file
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown, mnist_dir, write_results  # noqa: E402
from denoising import bm3d_mosaic, corrected, scores  # noqa: E402
from denoising_defaults import PHOTOS_TRAIN, SIGMAS, cli, make_patches  # noqa: E402

from aekit.tasks.denoise import add_noise  # noqa: E402
from aekit.training.dihedral import SQUARE, dihedral, self_ensemble  # noqa: E402
from aekit.training.runs import load_run  # noqa: E402

VAL_PHOTOS = PHOTOS_TRAIN[::4]


def splits(data: str, n_train: int, n_score: int, data_dir: str | None):
    """(train (n, 1, H, W), trainer's validation (100, ...), scored validation (n_score, ...)) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    if data == "mnist":
        from aekit.data import load_data

        ds = load_data("mnist", data_dir=mnist_dir(data_dir))
        train = ds.train[torch.randperm(len(ds.train), generator=g)[:n_train]]
        return train, ds.val[:100], ds.val[100:100 + n_score]
    names = [n for n in PHOTOS_TRAIN if n not in VAL_PHOTOS]
    full = torch.from_numpy(make_patches(names, n_train + 100, seed=0))
    full = full[torch.randperm(len(full), generator=g)]
    return full[100:], full[:100], torch.from_numpy(make_patches(VAL_PHOTOS, n_score, seed=1))


def run_variant(variant: str, data: str, args, work: Path) -> dict:
    train, inner, scored = splits(data, args.n_train, args.n_score, args.data_dir)
    if variant == "aug":
        train = torch.cat([dihedral(train, k) for k in SQUARE])
        train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    np.save(work / "train.npy", torch.cat([train, inner]).numpy())
    t0 = time.perf_counter()
    extra = ["--epochs", "1"] if args.quick else []
    cli("train", "dae", "--data", work / "train.npy", "--out", work / "run", "--overwrite", "--quiet",
        "--val-fraction", len(inner) / (len(train) + len(inner)), *extra)
    seconds = time.perf_counter() - t0
    model, _ = load_run(work / "run")
    model.eval()
    rows = []
    with torch.no_grad():
        for sigma in SIGMAS:
            noisy = add_noise(scored, f"gaussian_clipped:{sigma}", seed=1)
            plain = model.reconstruct(noisy).clamp(0, 1)
            ens = self_ensemble(model.reconstruct, noisy).clamp(0, 1)
            bm = corrected(bm3d_mosaic(noisy.numpy()[:, 0], sigma), sigma, True)
            rows.append({"data": data, "variant": variant, "sigma": sigma, "plain": scores(scored, plain),
                         "tta8": scores(scored, ens), "bm3d_untuned": scores(scored, bm)})
            print(data, variant, sigma, {k: (round(v["psnr"], 2), round(v["ssim"], 3)) for k, v in rows[-1].items()
                                         if isinstance(v, dict)}, flush=True)
    return {"rows": rows, "train_seconds": round(seconds, 1), "train_images": int(train.shape[0])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="photos", choices=["photos", "mnist"])
    p.add_argument("--variants", default="base,aug", help="comma-separated: base, aug")
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-score", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="denoising_ensemble_validation")
    p.add_argument("--quick", action="store_true", help="smoke run: 64 images, 1 epoch; writes no results file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.n_train, args.n_score = 64, 8
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in ("base", "aug"):
            p.error(f"--variants takes base and/or aug; got {v!r}")
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for v in variants:
            work = Path(tmp) / v
            work.mkdir()
            out = run_variant(v, args.data, args, work)
            rows += out.pop("rows")
            runs[v] = out
    table = markdown([{"data": r["data"], "variant": r["variant"], "sigma": r["sigma"],
                       **{f"{k} PSNR / SSIM": f"{r[k]['psnr']:.2f} / {r[k]['ssim']:.3f}"
                          for k in ("plain", "tta8", "bm3d_untuned")}} for r in rows],
                     ["data", "variant", "sigma", "plain PSNR / SSIM", "tta8 PSNR / SSIM", "bm3d_untuned PSNR / SSIM"])
    print(table)
    if args.quick:
        print("--quick: a smoke run; no results file written")
        return 0
    print(f"wrote {write_results(args.tag, {'rows': rows, 'runs': runs, 'table': table})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
