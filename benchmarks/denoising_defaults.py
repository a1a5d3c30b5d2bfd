"""The command-line defaults of a denoising autoencoder against NL-means and BM3D (issue 16, item 3).

What a user gets from

    aekit train dae --data TRAIN.npy --out RUN --val-fraction 0.0244
    aekit denoise RUN --data NOISY.npy --out DENOISED.npy

with no model option: on images the data-aware defaults (aekit.training.data_defaults) pick a U-Net
(channels 16, 32), blind Gaussian training noise (gaussian_blind:max_std=0.55, each image's std
drawn from U[0, 0.55]; Zhang et al. 2017, DnCNN-B), the gaussian likelihood (MSE) and at least
5,000 steps, and the run records the denoising self-ensemble ('aekit denoise' averages the outputs
for the 8 turned and flipped copies of each image). One model serves every noise level. The
"dae_one_pass" column is the same run denoised with --no-ensemble. It is compared, on Gaussian noise clipped to [0, 1] at sigma 0.1, 0.3
and 0.5, with scikit-image's NL-means and BM3D (pip bm3d), both tuned on validation images (their
strength and the clipped-noise bias correction of clipped_noise.py; denoising.py's grids), by
PSNR (dB) and SSIM on test images:

  mnist   4000 MNIST training images (a seeded random subset), 100 validation, 300 test images
  photos  32x32 grayscale patches of natural photographs: training patches of 12 scikit-image
          photographs, test patches of 6 others (make_patches below), 4000 / 100 / 300

    python benchmarks/denoising_defaults.py                # the full run (about an hour on one CPU thread)
    python benchmarks/denoising_defaults.py --quick        # smoke run: tiny data, 1 epoch, no results file
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown, mnist_dir, write_results  # noqa: E402
from denoising import BM3D_FACTORS, NLM_FACTORS, bm3d_mosaic, corrected, nl_means, psnr, scores  # noqa: E402

from aekit.cli import main as aekit_main  # noqa: E402
from aekit.data import load_data  # noqa: E402
from aekit.tasks.denoise import add_noise  # noqa: E402

SIGMAS = (0.1, 0.3, 0.5)
PHOTOS_TRAIN = ("astronaut", "brick", "cat", "coffee", "grass", "gravel", "moon", "rocket", "immunohistochemistry",
                "retina", "hubble_deep_field", "stereo_motorcycle")
PHOTOS_TEST = ("camera", "chelsea", "coins", "clock", "page", "text")


def make_patches(names, n: int, *, side: int = 32, seed: int = 0) -> np.ndarray:
    """(n, 1, side, side) float32 grayscale crops in [0, 1], cycling over the scikit-image photographs `names`."""
    import skimage.data as data
    from skimage.color import rgb2gray

    rng = np.random.default_rng(seed)
    images = []
    for name in names:
        im = getattr(data, name)()
        im = im[0] if isinstance(im, tuple) else im
        im = rgb2gray(im) if im.ndim == 3 else im / 255.0
        images.append(im.astype(np.float32))
    out = []
    for i in range(n):
        im = images[i % len(images)]
        y, x = rng.integers(0, im.shape[0] - side), rng.integers(0, im.shape[1] - side)
        out.append(im[y:y + side, x:x + side])
    return np.stack(out)[:, None]


def splits(name: str, args) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train (n, 1, H, W), val (n_val, ...), test (n_test, ...)) in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    if name == "mnist":
        ds = load_data("mnist", data_dir=mnist_dir(args.data_dir))
        train = ds.train[torch.randperm(len(ds.train), generator=g)[:args.n_train]]
        return train, ds.val[:args.n_val], ds.test[:args.n_test]
    full = torch.from_numpy(make_patches(PHOTOS_TRAIN, args.n_train + args.n_val, seed=0))
    full = full[torch.randperm(len(full), generator=g)]
    test = torch.from_numpy(make_patches(PHOTOS_TEST, args.n_test, seed=1))
    return full[args.n_val:], full[:args.n_val], test


def cli(*argv) -> None:
    code = aekit_main([str(a) for a in argv])
    if code:
        raise SystemExit(f"aekit {' '.join(map(str, argv))} exited with {code}")


def train_default_dae(train: torch.Tensor, val: torch.Tensor, work: Path, args) -> tuple[Path, dict]:
    """`aekit train dae` on train + val in one file, --val-fraction holding out len(val) rows (a seeded random
    choice: the trainer keeps its best validation epoch), so it trains on len(train) images; model options default."""
    path = work / "train.npy"
    np.save(path, torch.cat([train, val]).numpy())
    run = work / "run"
    t0 = time.perf_counter()
    given = [a for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--lr", args.lr))
             if value is not None for a in (flag, value)]  # only what was asked for: otherwise the CLI's defaults
    cli("train", "dae", "--data", path, "--out", run, "--overwrite", *given,
        "--val-fraction", len(val) / (len(train) + len(val)), "--quiet")
    seconds = time.perf_counter() - t0
    info = json.loads((run / "run.json").read_text())
    return run, {"seconds": round(seconds, 1), "defaults": info.get("defaults"), "model": info.get("model"),
                 "train": {k: info["train"].get(k) for k in ("epochs", "batch_size", "lr")},
                 "train_rows": info["dataset"]["sizes"]["train"], "val_rows": info["dataset"]["sizes"]["val"]}


def dae_denoise(run: Path, noisy: torch.Tensor, work: Path, *extra) -> np.ndarray:
    """`aekit denoise RUN --data NOISY.npy --out OUT.npy [extra]`: (N, 1, H, W) in [0, 1]."""
    np.save(work / "noisy.npy", noisy.numpy())
    cli("denoise", run, "--data", work / "noisy.npy", "--out", work / "denoised.npy", *extra)
    return np.load(work / "denoised.npy")


def classical(noisy_val, val, noisy_test, sigma: float, make, factors) -> tuple[np.ndarray, dict]:
    """Tune `make(noisy (N, H, W), factor)` and the clipped-noise correction on validation PSNR; apply to test."""
    best = max((psnr(val, corrected(make(noisy_val, f), sigma, on)), f, on) for f in factors for on in (False, True))
    return corrected(make(noisy_test, best[1]), sigma, best[2])[:, None], {"factor": best[1], "correction": best[2]}


def evaluate(name: str, args, work: Path) -> list[dict]:
    train, val, test = splits(name, args)
    run, trained = train_default_dae(train, val, work, args)
    print(f"{name}: trained the default DAE on {trained['train_rows']} images in {trained['seconds']}s", flush=True)
    rows = []
    for sigma in SIGMAS:
        spec = f"gaussian_clipped:{sigma}"
        noisy_test, noisy_val = add_noise(test, spec, seed=1), add_noise(val, spec, seed=2)
        row = {"data": name, "sigma": sigma, "dae": scores(test, dae_denoise(run, noisy_test, work)),
               "dae_one_pass": scores(test, dae_denoise(run, noisy_test, work, "--no-ensemble"))}
        nv, nt = noisy_val.numpy()[:, 0], noisy_test.numpy()[:, 0]
        out, row["nlm_tuned"] = classical(nv, val, nt, sigma, lambda x, f: nl_means(x, f, 5), args.nlm_factors)
        row["nlm"] = scores(test, out)
        if not args.no_bm3d:
            out, row["bm3d_tuned"] = classical(nv, val, nt, sigma, lambda x, f: bm3d_mosaic(x, f * sigma),
                                               args.bm3d_factors)
            row["bm3d"] = scores(test, out)
        rows.append(row)
        print(name, sigma, {k: (round(v["psnr"], 2), round(v["ssim"], 3)) for k, v in row.items()
                            if isinstance(v, dict) and "psnr" in v}, flush=True)
    return [{**r, "train": trained} for r in rows]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist,photos", help="comma-separated: mnist, photos (default: both)")
    p.add_argument("--data-dir", default=None, help="folder of the MNIST IDX files")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--n-val", type=int, default=100)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--epochs", type=int, default=None, help="default: the CLI's (data-aware: >= 1,000 steps)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the CLI's")
    p.add_argument("--lr", type=float, default=None, help="default: the CLI's")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    p.add_argument("--tag", default="denoising_defaults", help="results file name (one per --data run in parallel)")
    p.add_argument("--no-bm3d", action="store_true", help="skip BM3D (when the bm3d package is missing)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, 1 epoch, one tuning value; "
                                                        "prints, writes no results file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.nlm_factors, args.bm3d_factors = NLM_FACTORS, BM3D_FACTORS
    if args.quick:
        args.n_train, args.n_val, args.n_test, args.epochs = 64, 8, 8, 1
        args.nlm_factors, args.bm3d_factors = (1.0,), (1.0,)
    if not args.no_bm3d:
        try:
            import bm3d  # noqa: F401
        except ImportError:
            p.error("the bm3d package is missing: pip install bm3d, or pass --no-bm3d")
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [s.strip() for s in args.data.split(",") if s.strip()]:
            if name not in ("mnist", "photos"):
                p.error(f"--data takes mnist and/or photos; got {name!r}")
            work = Path(tmp) / name
            work.mkdir()
            rows += evaluate(name, args, work)
    table = [{"data": r["data"], "sigma": r["sigma"],
              **{f"{k} PSNR / SSIM": f"{r[k]['psnr']:.2f} / {r[k]['ssim']:.3f}" for k in ("dae", "dae_one_pass", "nlm", "bm3d")
                 if k in r}}
             for r in rows]
    columns = ["data", "sigma"] + [c for c in ("dae PSNR / SSIM", "dae_one_pass PSNR / SSIM", "nlm PSNR / SSIM",
                                               "bm3d PSNR / SSIM") if c in table[0]]
    print(markdown(table, columns))
    if args.quick:
        print("--quick: a smoke run; no results file written")
        return 0
    path = write_results(args.tag, {"rows": rows, "table": markdown(table, columns),
                                                "wall_seconds": round(time.perf_counter() - t0, 1),
                                                "settings": {k: getattr(args, k) for k in ("n_train", "n_val", "n_test",
                                                                                           "epochs", "batch_size", "lr",
                                                                                           "threads")}})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
