"""`aekit evaluate | encode | reconstruct | sample`: use a trained run directory."""

from __future__ import annotations

import json
import sys

import numpy as np

from ..errors import ConfigError
from ..evaluation import encode_run, evaluate_run, reconstruct_run, sample_run
from ..npy_file import save_npy
from .options import add_data_options, out_path
from .parser import positive_int


def add_inspect_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="reconstruction metrics (and the ELBO for VAEs) of a run",
                       description="Reconstruction MSE, summed squared error, BCE and PSNR; ELBO and KL in nats per image for VAEs.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train'")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--split", default=None, help="split of a named dataset: train, val, test, all (default: test)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--elbo-samples", type=positive_int, default=1, help="posterior samples per image for the ELBO (default: %(default)s)")
    p.add_argument("--iwae-k", type=positive_int, default=None,
                   help="add nll_iwae, the importance-weighted NLL estimate with K samples (VAEs), and active_units")
    p.add_argument("--probe", action="store_true",
                   help="add probe_accuracy (logistic regression) and knn_accuracy of the codes, fitted on the train split")
    p.set_defaults(func=run_evaluate)

    for name, what in (("encode", "codes (N x latent_dim) as .npy"), ("reconstruct", "reconstructions in the data's units as .npy")):
        p = sub.add_parser(name, help=f"write the {what}", description=f"Write the {what}.")
        p.add_argument("run_dir", help="a run directory written by 'aekit train'")
        add_data_options(p, required=False, max_samples=True)
        p.add_argument("--split", default=None, help="split of a named dataset (default: test)")
        p.add_argument("--out", required=True, help="output .npy file")
        p.set_defaults(func=run_encode if name == "encode" else run_reconstruct)

    p = sub.add_parser("sample", help="draw samples from a VAE's prior", description="Decode draws z ~ N(0, I).")
    p.add_argument("run_dir", help="a run directory of a generative variant (vae, beta_vae)")
    p.add_argument("-n", type=positive_int, default=16, help="number of samples (default: %(default)s)")
    p.add_argument("--out", required=True, help="output .npy (array, in the training data's units) or .png (image grid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default: %(default)s)")
    p.add_argument("--label", type=int, default=None, metavar="K",
                   help="class of every sample (conditional runs, 'cvae'; default: the classes in turn)")
    p.add_argument("--ex-post", type=positive_int, default=None, metavar="K",
                   help="deterministic runs (rae, wae_mmd, ae, ...): sample a K-component Gaussian mixture fitted on the "
                        "codes of the run's training data (Ghosh et al. 2020); discrete runs (vq_vae, fsq_vae) always "
                        "sample a categorical prior fitted on their training indices")
    p.add_argument("--code-prior", choices=("categorical", "autoregressive"), default="categorical",
                   help="discrete runs: the prior fitted on the training indices, per-position categorical or "
                        "autoregressive over the code positions (a small GRU; default: %(default)s)")
    p.set_defaults(func=run_sample)


def run_evaluate(args) -> int:
    result = evaluate_run(args.run_dir, data=args.data, data_dir=args.data_dir, split=args.split,
                          elbo_samples=args.elbo_samples, iwae_k=args.iwae_k, probe=args.probe,
                          max_samples=args.max_samples)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if k != "kl_per_unit":
                print(f"{k:>15}: {v:.6g}" if isinstance(v, float) else f"{k:>15}: {v}")
    return 0


def run_encode(args) -> int:
    out = out_path(args.out, (".npy",))
    z, what = encode_run(args.run_dir, data=args.data, data_dir=args.data_dir, split=args.split,
                         max_samples=args.max_samples)  # (N, D) codes
    save_npy(out, z.numpy().astype(np.float32))
    print(f"wrote {tuple(z.shape)} codes of {what} to {out}", file=sys.stderr)
    return 0


def run_reconstruct(args) -> int:
    out = out_path(args.out, (".npy",))
    x_hat, what = reconstruct_run(args.run_dir, data=args.data, data_dir=args.data_dir, split=args.split,
                                  max_samples=args.max_samples)
    save_npy(out, x_hat.numpy().astype(np.float32))
    print(f"wrote {tuple(x_hat.shape)} reconstructions of {what} to {out}", file=sys.stderr)
    return 0


def run_sample(args) -> int:
    out = out_path(args.out, (".npy", ".png"))
    drawn = sample_run(args.run_dir, n=args.n, seed=args.seed, label=getattr(args, "label", None),
                       ex_post=getattr(args, "ex_post", None), code_prior=getattr(args, "code_prior", "categorical"))
    if out.suffix.lower() == ".npy":  # the training data's units, clipped where bounded (aekit.units)
        save_npy(out, drawn["raw"].numpy().astype(np.float32))
    else:
        model = drawn["model"]
        if len(model.input_shape) != 3:
            raise ConfigError(f"--out .png needs an image model; this one has input_shape={model.input_shape}. Use .npy.")
        from PIL import Image

        from ..image_grid import image_grid

        Image.fromarray(image_grid(drawn["x"].numpy())).save(out)
    print(f"wrote {args.n} samples to {out}", file=sys.stderr)
    return 0
