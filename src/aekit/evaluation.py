"""Evaluate and use a trained run directory: reconstruction metrics, the ELBO and IWAE bound of VAEs, probes
of the codes; its codes, reconstructions, samples and interpolation paths.

What `aekit evaluate` prints, `aekit report` and `aekit compare` tabulate, and a Python user calls:

    from aekit.evaluation import evaluate_run
    evaluate_run("runs/vae", iwae_k=100, probe=True)  # {'mse_per_pixel': ..., 'elbo': ..., 'nll_iwae': ...}

Likelihoods follow the usual protocol: a run trained on dynamically binarized data is scored on
one fixed stochastic binarization (Salakhutdinov & Murray 2008); the IWAE bound is Burda, Grosse &
Salakhutdinov 2016; the linear probe and k-NN accuracy fit on the run's training split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import ConfigError, DataError
from .metrics import (active_units, elbo_terms, iwae_bound, knn_accuracy, linear_probe_accuracy,
                      reconstruction_metrics, ssim)
from .training.runs import load_run, run_data


def binarized(x: torch.Tensor, info: dict) -> tuple[torch.Tensor, str]:
    """(inputs as the run was trained on them, the binarize mode recorded in run.json)."""
    mode = (info.get("train") or {}).get("binarize", "none")
    if mode == "dynamic":  # one fixed stochastic binarization, the usual protocol for likelihoods
        return torch.bernoulli(x, generator=torch.Generator().manual_seed(0)), mode
    if mode == "threshold":
        return (x > 0.5).float(), mode
    return x, mode


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """fn over batches of x, concatenated: (N, ...) -> (N, ...)."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def batched_labelled(fn, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """fn(x, y) over batches: encode / reconstruct of a conditional model."""
    return torch.cat([fn(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def labels_for(model, y, what: str):
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
    x, binarize = binarized(x, info)
    labels = labels_for(model, y, what)
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
    if iwae_k is not None:
        if not model.is_generative:
            raise ConfigError(f"--iwae-k needs a VAE (bottleneck 'gaussian'); this run is {model.variant!r}.")
        out["nll_iwae"] = -iwae_bound(model, x, k=iwae_k)
        out["iwae_k"] = iwae_k
        out["active_units"] = active_units(model, x)["active_units"]
    if model.provides("indices"):  # discrete codes: codebook usage and perplexity
        from .metrics.codes import codebook_usage

        out.update(codebook_usage(model, x))
    if model.provides("sparse_code"):  # k-sparse codes: L0 and dead units
        from .metrics.codes import code_sparsity

        out.update(code_sparsity(model, x))
    if probe:
        out.update(probe_scores(model, ds, x, y, info))
    if y is not None and (Path(run_dir) / "classifier.safetensors").is_file():  # a stacked run's softmax head
        from .tasks.stacked.layerwise import accuracy, load_classifier

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


def encode_run(run_dir, *, data=None, data_dir=None, split=None, max_samples: int | None = None):
    """((N, latent_dim) codes, a description of the data) of a run's model on its data (or data=)."""
    model, info = load_run(run_dir)
    x, y, _, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model, max_samples=max_samples)
    labels = labels_for(model, y, what)
    z = batched(model.encode, x) if labels is None else batched_labelled(model.encode, x, labels)
    return z, what


def reconstruct_run(run_dir, *, data=None, data_dir=None, split=None, max_samples: int | None = None):
    """(reconstructions in the loaded data's units, clipped where bounded; a description of the data)."""
    from .units import OutputUnits

    model, info = load_run(run_dir)
    x, y, ds, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model, max_samples=max_samples)
    labels = labels_for(model, y, what)
    x_hat = batched(model.reconstruct, x) if labels is None else batched_labelled(model.reconstruct, x, labels)
    return OutputUnits.from_dataset(ds, model).to_raw(x_hat), what


@torch.no_grad()
def sample_run(run_dir, *, n: int, seed: int = 0, label: int | None = None, ex_post: int | None = None,
               code_prior: str = "categorical") -> dict:
    """n draws from a run's prior: {'model', 'x' (model units), 'raw' (the training data's units)}.

    Gaussian runs draw their prior (N(0, I) or a learned one); discrete runs (vq, fsq) a categorical prior
    fitted on their training indices (code_prior='autoregressive': a GRU over the code positions); ex_post=K: a deterministic run samples a K-component Gaussian mixture
    fitted on the codes of its training data (Ghosh et al. 2020)."""
    from .units import OutputUnits

    model, info = load_run(run_dir)
    if ex_post is not None and model.is_generative:
        raise ConfigError(f"--ex-post is for deterministic runs; {model.variant!r} has a prior of its own.")
    if code_prior != "categorical" and not (model.provides("discrete") and not model.is_generative):
        raise ConfigError(f"--code-prior {code_prior} is for discrete runs (vq_vae, fsq_vae); {model.variant!r} "
                          "has no code indices.")
    if ex_post is not None or (model.provides("discrete") and not model.is_generative):
        x_train, _ = binarized(run_data(info, model=model)[2].train, info)  # the run's training split
        if ex_post is not None:
            from .tasks.ex_post import ExPostSampler

            x = ExPostSampler(ex_post, seed=seed).fit(model, x_train).sample(n)
            return {"model": model, "x": x, "raw": OutputUnits.from_run(info, model).to_raw(x)}
        from .tasks.code_prior import fit_code_prior

        fit_code_prior(model, x_train, kind=code_prior, seed=seed)
    with torch.no_grad():
        x = model.sample(n, generator=torch.Generator().manual_seed(seed), label=label)
    return {"model": model, "x": x, "raw": OutputUnits.from_run(info, model).to_raw(x)}


def interpolate_run(run_dir, *, pair=(0, 1), steps: int = 8, mode: str = "linear", data=None, data_dir=None,
                    split=None) -> tuple[torch.Tensor, object, torch.nn.Module]:
    """(path (steps, *shape) in model units, the dataset, the model) for rows pair[0], pair[1] of the data."""
    model, info = load_run(run_dir)
    x, y, ds, what = run_data(info, source=data, data_dir=data_dir, split=split, model=model)
    if len(pair) != 2:
        raise ConfigError(f"--pair must be two row indices I,J; got {','.join(map(str, pair))!r}.")
    for i in pair:
        if not -x.shape[0] <= i < x.shape[0]:
            raise ConfigError(f"--pair index {i} is out of range for {what}, which has {x.shape[0]} rows.")
    i, j = pair
    labels = None
    if getattr(model, "num_classes", 0):
        if y is None:
            raise DataError(f"this run is conditional (num_classes={model.num_classes}) and needs the labels of the two "
                            f"rows, but {what} has none.")
        labels = (int(y[i]), int(y[j]))
    with torch.no_grad():
        path = model.interpolate(x[i], x[j], steps=steps, mode=mode, y=labels)  # (steps, *shape)
    return path, ds, model
