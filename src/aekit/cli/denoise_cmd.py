"""`aekit denoise RUN_DIR --data SRC --out X.npy [--noise SPEC]`: denoise with a trained DAE.

Without --noise the data are taken to be noisy already and are denoised. With --noise (e.g.
gaussian_clipped:0.5) the clean data are corrupted first, with a fixed --seed, and the command
also prints PSNR / SSIM of the noisy input and of the denoised output against the clean data.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from ..tasks.denoise import add_noise, denoise, denoising_metrics
from ..training.runs import load_run, run_data
from ..units import OutputUnits
from .options import add_data_options, out_path, save_npy


def add_denoise_parser(sub) -> None:
    p = sub.add_parser("denoise", help="denoise data with a trained (denoising) autoencoder",
                       description="Write denoised reconstructions as .npy; with --noise, corrupt clean data first "
                                   "and report PSNR / SSIM of noisy vs denoised.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train' (e.g. 'aekit train dae --noise ...')")
    add_data_options(p, required=True, max_samples=True)
    p.add_argument("--split", default=None, help="split of a named dataset (default: test)")
    p.add_argument("--out", required=True, help="output .npy file of denoised data (in the data's units)")
    p.add_argument("--noise", default=None,
                   help="corrupt the (clean) data first and evaluate: gaussian:STD, gaussian_clipped:STD, "
                        "salt_and_pepper:P, masking:P (pixel units)")
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise (default: 0)")
    p.add_argument("--save-noisy", default=None, help="also write the noisy input (.npy) when --noise is given")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=run_denoise)


def run_denoise(args) -> int:
    out = out_path(args.out, (".npy",))
    noisy_out = out_path(args.save_noisy, (".npy",)) if args.save_noisy else None
    model, info = load_run(args.run_dir)
    x, _, ds, what = run_data(info, source=args.data, data_dir=args.data_dir, split=args.split, model=model,
                              max_samples=args.max_samples)
    x_noisy = add_noise(x, args.noise, seed=args.seed) if args.noise else x
    x_hat = denoise(model, x_noisy)
    save_npy(out, OutputUnits.from_dataset(ds, model).to_raw(x_hat).numpy().astype(np.float32))
    if noisy_out is not None:  # the input made here, not a model output: converted, not clipped
        save_npy(noisy_out, ds.to_raw(x_noisy).numpy().astype(np.float32))
    print(f"wrote {tuple(x_hat.shape)} denoised samples of {what} to {out}", file=sys.stderr)
    if args.noise:
        metrics = {"data": what, "noise": args.noise, "images": int(x.shape[0]), **denoising_metrics(x, x_noisy, x_hat)}
        if args.json:
            print(json.dumps(metrics))
        else:
            for k, v in metrics.items():
                print(f"{k:>14}: {v:.6g}" if isinstance(v, float) else f"{k:>14}: {v}")
    return 0
