"""`aekit denoise RUN_DIR --data SRC --out X.npy [--noise SPEC]`: denoise with a trained DAE.

Without --noise the data are taken to be noisy already and are denoised. With --noise (e.g.
gaussian_clipped:0.5) the clean data are corrupted first, with a fixed --seed, and the command
also prints PSNR / SSIM of the noisy input and of the denoised output against the clean data.
"""

from __future__ import annotations

import json
import sys

from ..tasks.denoise import denoise_run
from ..npy_file import save_npy
from .options import add_data_options, out_path


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
    p.add_argument("--seed", type=int, default=0, help="seed of the added noise (default: %(default)s)")
    p.add_argument("--save-noisy", default=None, help="also write the noisy input (.npy) when --noise is given")
    e = p.add_mutually_exclusive_group()
    e.add_argument("--ensemble", dest="ensemble", action="store_true", default=None,
                   help="average the denoised 8 turned and flipped copies of each image (8x the time; default: what "
                        "the run records: 'aekit train dae' on images chooses it on its validation images; runs "
                        "trained with --augment dihedral use it; others take one pass)")
    e.add_argument("--no-ensemble", dest="ensemble", action="store_false", help="one pass per image")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=run_denoise, ensemble=None)


def run_denoise(args) -> int:
    out = out_path(args.out, (".npy",))
    noisy_out = out_path(args.save_noisy, (".npy",)) if args.save_noisy else None
    result = denoise_run(args.run_dir, data=args.data, data_dir=args.data_dir, split=args.split,
                         max_samples=args.max_samples, noise=args.noise, seed=args.seed,
                         ensemble=args.ensemble)
    save_npy(out, result["denoised"])
    if noisy_out is not None:
        save_npy(noisy_out, result["noisy"])
    how = " (mean over the image symmetries)" if result["ensemble"] else ""
    print(f"wrote {tuple(result['denoised'].shape)} denoised samples of {result['data']}{how} to {out}", file=sys.stderr)
    if args.noise:
        metrics = result["metrics"]
        if args.json:
            print(json.dumps(metrics))
        else:
            for k, v in metrics.items():
                print(f"{k:>14}: {v:.6g}" if isinstance(v, float) else f"{k:>14}: {v}")
    return 0
