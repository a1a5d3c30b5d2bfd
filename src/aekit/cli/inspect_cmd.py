"""`aekit evaluate | encode | reconstruct | sample`: use a trained run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..metrics import (active_units, elbo_terms, iwae_bound, knn_accuracy, linear_probe_accuracy,
                       reconstruction_metrics, ssim)
from ..registry import BOTTLENECKS
from ..training.runs import load_run, run_data
from ..units import OutputUnits
from .parser import positive_int
from .train_cmd import add_data_options


def add_inspect_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="reconstruction metrics (and the ELBO for VAEs) of a run",
                       description="Reconstruction MSE, summed squared error, BCE and PSNR; ELBO and KL in nats per image for VAEs.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train'")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--split", default=None, help="split of a named dataset: train, val, test, all (default: test)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--elbo-samples", type=positive_int, default=1, help="posterior samples per image for the ELBO (default: 1)")
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
    p.add_argument("-n", type=positive_int, default=16, help="number of samples (default: 16)")
    p.add_argument("--out", required=True, help="output .npy (array, in the training data's units) or .png (image grid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default: 0)")
    p.add_argument("--label", type=int, default=None, metavar="K",
                   help="class of every sample (conditional runs, 'cvae'; default: the classes in turn)")
    p.add_argument("--ex-post", type=positive_int, default=None, metavar="K",
                   help="deterministic runs (rae, wae_mmd, ae, ...): sample a K-component Gaussian mixture fitted on the "
                        "codes of the run's training data (Ghosh et al. 2020); discrete runs (vq_vae, fsq_vae) always "
                        "sample a categorical prior fitted on their training indices")
    p.set_defaults(func=run_sample)


def _binarized(x: torch.Tensor, info: dict) -> tuple[torch.Tensor, str]:
    mode = (info.get("train") or {}).get("binarize", "none")
    if mode == "dynamic":  # one fixed stochastic binarization, the usual protocol for likelihoods
        return torch.bernoulli(x, generator=torch.Generator().manual_seed(0)), mode
    if mode == "threshold":
        return (x > 0.5).float(), mode
    return x, mode


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def batched_labelled(fn, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """fn(x, y) over batches: encode / reconstruct of a conditional model."""
    return torch.cat([fn(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def _labels_for(model, y, what: str):
    """The labels a conditional model needs, or None for every other model."""
    if not getattr(model, "num_classes", None):
        return None
    if y is None:
        raise ConfigError(f"this run is conditional ({model.variant!r}, num_classes={model.num_classes}) and needs "
                          f"labels, but {what} has none; pass --data with labels.")
    return torch.as_tensor(y, dtype=torch.long)


def evaluate_run(run_dir, *, data=None, data_dir=None, split=None, elbo_samples: int = 1,
                 iwae_k: int | None = None, probe: bool = False, max_samples: int | None = None) -> dict:
    model, info = load_run(run_dir)
    x, y, ds, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model, max_samples=max_samples)
    x, binarize = _binarized(x, info)
    labels = _labels_for(model, y, what)
    x_hat = batched(model.reconstruct, x) if labels is None else batched_labelled(model.reconstruct, x, labels)
    out = {"data": what, "variant": model.variant, "binarize": binarize, **reconstruction_metrics(x, x_hat)}
    if len(model.input_shape) == 3 and out["bce_per_image"] is not None:
        out["ssim"] = ssim(x, x_hat)
    if labels is not None:  # the likelihood metrics decode codes alone; conditional models report reconstructions
        if iwae_k is not None or probe:
            raise ConfigError("--iwae-k and --probe are not available for conditional models; "
                              "evaluate reports their reconstruction metrics.")
        return out
    if model.is_generative:
        terms = elbo_terms(model, x, samples=elbo_samples)
        out.update({k: terms[k] for k in ("elbo", "kl", "nll_recon", "bits_per_dim")})
        out["kl_per_unit"] = terms["kl_per_unit"]
    if model.provides("indices"):  # discrete codes: codebook usage and perplexity
        from ..metrics.codes import codebook_usage

        out.update(codebook_usage(model, x))
    (bname, bparams), = model.config["bottleneck"].items()
    if "sparse_code" in BOTTLENECKS.capabilities(bname, bparams):  # k-sparse codes: L0 and dead units
        from ..metrics.codes import code_sparsity

        out.update(code_sparsity(model, x))
    if iwae_k is not None:
        if not model.is_generative:
            raise ConfigError(f"--iwae-k needs a VAE (bottleneck 'gaussian'); this run is {model.variant!r}.")
        out["nll_iwae"] = -iwae_bound(model, x, k=iwae_k)
        out["iwae_k"] = iwae_k
        out["active_units"] = active_units(model, x)["active_units"]
    if probe:
        out.update(probe_scores(model, ds, x, y, info))
    if y is not None and (Path(run_dir) / "classifier.safetensors").is_file():  # a stacked run's softmax head
        from ..tasks.stacked.layerwise import accuracy, load_classifier

        out["accuracy"] = accuracy(load_classifier(run_dir), x, y)
    return out


def probe_scores(model, ds, x_test, y_test, info: dict) -> dict:
    """Linear-probe and k-NN accuracy of codes, fitted on the run's training split."""
    if y_test is None or ds.y_train is None:
        raise ConfigError("--probe needs labels; this data source has none.")
    x_train = ds.train
    z_train = batched(model.encode, x_train).numpy()
    z_test = batched(model.encode, x_test).numpy()
    return {"probe_accuracy": linear_probe_accuracy(z_train, ds.y_train, z_test, y_test),
            "knn_accuracy": knn_accuracy(z_train, ds.y_train, z_test, y_test),
            "probe_fit_samples": int(x_train.shape[0])}


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


def _out_path(path: str, suffixes: tuple[str, ...]) -> Path:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ConfigError(f"--out must end in {' or '.join(suffixes)}; got {path!r}.")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _save_npy(path: Path, array: np.ndarray) -> None:
    from ..checkpoint import atomic_write_bytes
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def run_encode(args) -> int:
    out = _out_path(args.out, (".npy",))
    model, info = load_run(args.run_dir)
    x, y, _, what = run_data(info, source=args.data, data_dir=args.data_dir, split=args.split, model=model,
                             max_samples=args.max_samples)
    labels = _labels_for(model, y, what)
    z = batched(model.encode, x) if labels is None else batched_labelled(model.encode, x, labels)  # (N, D) codes
    _save_npy(out, z.numpy().astype(np.float32))
    print(f"wrote {tuple(z.shape)} codes of {what} to {out}", file=sys.stderr)
    return 0


def run_reconstruct(args) -> int:
    out = _out_path(args.out, (".npy",))
    model, info = load_run(args.run_dir)
    x, y, ds, what = run_data(info, source=args.data, data_dir=args.data_dir, split=args.split, model=model,
                              max_samples=args.max_samples)
    labels = _labels_for(model, y, what)
    x_hat = batched(model.reconstruct, x) if labels is None else batched_labelled(model.reconstruct, x, labels)
    x_hat = OutputUnits.from_dataset(ds, model).to_raw(x_hat)  # the loaded data's units, clipped where bounded
    _save_npy(out, x_hat.numpy().astype(np.float32))
    print(f"wrote {tuple(x_hat.shape)} reconstructions of {what} to {out}", file=sys.stderr)
    return 0


def image_grid(images: np.ndarray, *, cols: int | None = None) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (rows*H, cols*W[, C]) uint8 with 1-pixel gaps."""
    n, c, h, w = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1, c), dtype=np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = np.clip(img.transpose(1, 2, 0), 0, 1)
    grid = (grid * 255).round().astype(np.uint8)
    return grid[..., 0] if c == 1 else grid


def run_sample(args) -> int:
    out = _out_path(args.out, (".npy", ".png"))
    model, info = load_run(args.run_dir)
    ex_post = getattr(args, "ex_post", None)
    if ex_post is not None and model.is_generative:
        raise ConfigError(f"--ex-post is for deterministic runs; {model.variant!r} has a prior of its own.")
    if ex_post is not None or (model.provides("discrete") and not model.is_generative):
        x_train, _ = _binarized(run_data(info, model=model)[2].train, info)  # the run's training split
        if ex_post is not None:
            from ..tasks.ex_post import ExPostSampler

            x = ExPostSampler(ex_post, seed=args.seed).fit(model, x_train).sample(args.n)
        else:
            from ..tasks.code_prior import fit_code_prior

            fit_code_prior(model, x_train)
    if ex_post is None:
        with torch.no_grad():
            x = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed),
                             label=getattr(args, "label", None))
    if out.suffix.lower() == ".npy":  # the training data's units, clipped where bounded (aekit.units)
        _save_npy(out, OutputUnits.from_run(info, model).to_raw(x).numpy().astype(np.float32))
    else:
        if len(model.input_shape) != 3:
            raise ConfigError(f"--out .png needs an image model; this one has input_shape={model.input_shape}. Use .npy.")
        from PIL import Image

        Image.fromarray(image_grid(x.numpy())).save(out)
    print(f"wrote {args.n} samples to {out}", file=sys.stderr)
    return 0
