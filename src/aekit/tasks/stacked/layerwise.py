"""Stacked autoencoders: greedy layer-wise pretraining, then end-to-end fine-tuning.

Bengio, Lamblin, Popovici & Larochelle 2007, "Greedy layer-wise training of deep networks";
Vincent et al. 2010, "Stacked denoising autoencoders"; Ng, CS294A / UFLDL, "Stacked autoencoders".

For widths layers = [w_1, ..., w_L] on data of dimension D = w_0:

1. pretraining: layer k is a one-hidden-layer aekit autoencoder (mlp, hidden=[], latent_dim=w_k)
   trained with the Trainer on the codes h_{k-1} of the layers below (h_0 = x):
       h_k = a_k(W_k h_{k-1} + b_k)                   (its bottleneck.linear, code activation a_k)
       h_{k-1}^ = a_{k-1}(V_k h_k + c_k)               (its decoder's one Linear)
   a_k is the hidden activation `act` for k < L and the top activation for k = L. Each layer can be
   plain, denoising, sparse_l1, sparse_kl or contractive (`layer_variant`).
2. assembly: one deep aekit Autoencoder, mlp backbone with hidden=[w_1 .. w_{L-1}], latent_dim=w_L,
   activation=act, code_activation=top. Its encoder Linears get W_1 .. W_{L-1} and its bottleneck
   W_L (in order); its decoder Linears get V_L .. V_1 (reverse order). The deep decoder applies
   `act` after every Linear but the last, so the stacked decoder applies a_{k-1} = act to layer
   k's reconstruction for k >= 2; layer 1's output goes through the data likelihood's mean, as
   in the deep model. The assembled model reproduces the stacked forward pass exactly.
   Layer k >= 2 is trained so that its training reconstruction is the one the stack uses: with
   sigmoid codes a Bernoulli likelihood (logits, mean = sigmoid; cross-entropy on soft targets);
   otherwise a fixed-sigma Gaussian (squared error), whose mean then passes through `act`.
3. fine-tuning: 'reconstruction' trains the assembled autoencoder end to end (the data
   likelihood, no corruption, no penalty); 'classifier' trains a linear softmax head on the top
   code and then the head and encoder together with cross-entropy (aekit.tasks.stacked.classifier);
   'none' keeps the pretrained stack.

The decoder is not trained by the classifier fine-tune: reconstructions of such a run come from
the pretrained decoder and an encoder that has moved away from it.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from ...build import build
from ...errors import ConfigError, check_choice
from ...model import Autoencoder
from ...training.trainer import TrainConfig, Trainer

# per layer variant: code activation of hidden layers, of the top layer, corruption, penalties
LAYER_VARIANTS: dict[str, dict] = {
    "plain": {"activation": "relu", "top": "none", "corruption": "none", "regularizers": {}},
    "denoising": {"activation": "relu", "top": "none", "corruption": "masking:0.25", "regularizers": {}},
    "sparse_l1": {"activation": "relu", "top": "relu", "corruption": "none",
                  "regularizers": {"l1_activity": {"weight": 1e-3}}},
    "sparse_kl": {"activation": "sigmoid", "top": "sigmoid", "corruption": "none",
                  "regularizers": {"kl_sparsity": {"rho": 0.05, "weight": 3.0}}},
    "contractive": {"activation": "sigmoid", "top": "sigmoid", "corruption": "none",
                    "regularizers": {"contractive": {"weight": 0.1, "method": "auto"}}},
}
CODE_ACTS = ("none", "sigmoid", "relu", "tanh")  # a code activation is also a hidden one (none = identity)
FINETUNE = ("reconstruction", "classifier", "none")


def check_layers(layers) -> list[int]:
    """[500, 250, 30] -> the same list; ConfigError for anything that is not 1+ positive integers."""
    try:
        widths = [int(w) for w in layers]
        ok = all(int(w) == w for w in layers) and len(widths) >= 1 and all(w >= 1 for w in widths)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"layers must be a list of one or more positive integers, e.g. [500, 250, 30]; got {layers!r}.")
    return widths


@dataclass
class Stack:
    """The pretrained layers and how they compose. layers[k] maps w_k -> w_{k+1} (0-based)."""

    layers: list[Autoencoder]
    activation: str  # code activation of every layer but the top one (a CODE_ACTS name)
    top_activation: str
    likelihood: str  # of the first layer (the data); layers above use bernoulli for sigmoid codes
    history: list[dict] = field(default_factory=list)  # per-epoch records with "layer" (1-based)
    summary: list[dict] = field(default_factory=list)  # per layer: sizes, loss before and after pretraining

    @property
    def widths(self) -> list[int]:
        return [m.latent_dim for m in self.layers]


def layer_settings(layer_variant: str, *, activation: str | None = None, top_activation: str | None = None,
                   corruption=None, regularizers: dict | None = None) -> dict:
    """The layer variant's settings with explicit overrides applied (None: the variant's)."""
    check_choice("layer_variant", layer_variant, LAYER_VARIANTS)
    s = copy.deepcopy(LAYER_VARIANTS[layer_variant])
    if activation is not None:
        s["activation"] = check_choice("stacked hidden activation", activation, CODE_ACTS)
    if top_activation is not None:
        s["top"] = check_choice("stacked top code activation", top_activation, CODE_ACTS)
    if corruption is not None:
        s["corruption"] = corruption
    if regularizers is not None:
        s["regularizers"] = copy.deepcopy(regularizers)
    return s


def _hidden_act(name: str) -> str:
    return "identity" if name == "none" else name  # the backbone's name for "no activation"


def _apply(act: str, t: torch.Tensor) -> torch.Tensor:
    if act == "sigmoid":
        return torch.sigmoid(t)
    if act == "relu":
        return torch.relu(t)
    if act == "tanh":
        return torch.tanh(t)
    return t


@torch.no_grad()
def _codes(model: Autoencoder, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Clean codes of x (eval mode: no corruption), on the CPU: (N, w)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model.encode(x[i:i + batch_size].to(device)).cpu() for i in range(0, x.shape[0], batch_size)])
    model.train(was)
    return out


def pretrain_stack(x_train: torch.Tensor, x_val: torch.Tensor | None = None, *, layers, layer_variant: str = "plain",
                   likelihood: str = "gaussian", activation: str | None = None, top_activation: str | None = None,
                   corruption=None, regularizers: dict | None = None, config: TrainConfig | None = None,
                   max_time_per_layer=None, seed: int = 0, callbacks=None) -> Stack:
    """Greedy layer-wise pretraining: layer k is an autoencoder on the clean codes of layers 1..k-1.

    config holds the training options of every layer (epochs = epochs per layer), or a list of one
    TrainConfig per layer; binarize applies to the first layer only (codes are not pixels).
    max_time_per_layer: seconds (one number, or one per layer). callbacks(record, trainer) see every epoch.
    """
    widths = check_layers(layers)
    s = layer_settings(layer_variant, activation=activation, top_activation=top_activation,
                       corruption=corruption, regularizers=regularizers)
    configs = list(config) if isinstance(config, (list, tuple)) else [config or TrainConfig()] * len(widths)
    times = list(max_time_per_layer) if isinstance(max_time_per_layer, (list, tuple)) else [max_time_per_layer] * len(widths)
    if len(configs) != len(widths) or len(times) != len(widths):
        raise ConfigError(f"config and max_time_per_layer lists need one entry per layer ({len(widths)}); "
                          f"got {len(configs)} and {len(times)}.")
    stack = Stack(layers=[], activation=s["activation"], top_activation=s["top"], likelihood=likelihood)
    h_train, h_val = x_train, x_val  # (N, *shape) then (N, w_k)
    for k, width in enumerate(widths, start=1):
        code_act = s["top"] if k == len(widths) else s["activation"]
        if k == 1:
            lik, shape = likelihood, tuple(x_train.shape[1:])
        else:  # targets are codes of layer k-1: Bernoulli for sigmoid codes so the mean is sigmoid(V h + c)
            lik, shape = ("bernoulli" if stack.activation == "sigmoid" else "gaussian"), (h_train.shape[1],)
        regs = copy.deepcopy(s["regularizers"])
        if "kl_sparsity" in regs and code_act != "sigmoid":
            raise ConfigError(f"layer_variant {layer_variant!r} needs sigmoid codes in every layer (kl_sparsity); "
                              f"got code activation {code_act!r} for layer {k}.")
        model = build(None, input_shape=shape, backbone={"mlp": {"hidden": [], "activation": "identity"}},
                      latent_dim=width, bottleneck={"deterministic": {"activation": code_act}},
                      corruption=s["corruption"], regularizers=regs, likelihood=lik, seed=seed + k)
        base = configs[k - 1]
        cfg = dataclasses.replace(base, seed=base.seed + k, max_time=times[k - 1] or base.max_time,
                                  binarize=base.binarize if k == 1 else "none")
        records: list[dict] = []

        def tag(record, trainer, k=k, records=records):
            records.append({"phase": "pretrain", "layer": k, **record})
            for cb in callbacks or []:
                cb(records[-1], trainer)

        trainer = Trainer(model, cfg, callbacks=[tag])
        probe = h_val if h_val is not None and h_val.shape[0] > 0 else h_train[:4096]
        before = trainer.evaluate(trainer._prepare(probe, "val"))["loss"]
        result = trainer.fit(h_train, h_val)
        after = trainer.evaluate(trainer._prepare(probe, "val"))["loss"]
        model.eval()
        stack.layers.append(model)
        stack.history += records
        stack.summary.append({"layer": k, "in": int(h_train[0].numel()), "out": width, "code_activation": code_act,
                              "likelihood": lik, "loss_before": before, "loss_after": after,
                              "epochs": trainer.epoch, "seconds": round(result.seconds, 3)})
        h_train = _codes(model, h_train)
        h_val = _codes(model, h_val) if h_val is not None and h_val.shape[0] > 0 else None
    return stack


@torch.no_grad()
def stacked_encode(stack: Stack, x: torch.Tensor) -> torch.Tensor:
    """x (B, *shape) -> top code (B, w_L), layer by layer (each layer's clean code)."""
    h = x
    for model in stack.layers:
        model.eval()
        h = model.encode(h)
    return h


@torch.no_grad()
def stacked_decode(stack: Stack, z: torch.Tensor) -> torch.Tensor:
    """Top code (B, w_L) -> reconstruction mean (B, *shape), layer by layer from the top."""
    h = z
    for k in range(len(stack.layers) - 1, 0, -1):
        model = stack.layers[k]
        h = _apply(stack.activation, model.decode_params(h))  # layer k+1's reconstruction of h_k, through a_k
    return stack.layers[0].decode(h)  # the data likelihood's mean (sigmoid of logits for bernoulli)


def assemble_autoencoder(stack: Stack, *, seed: int = 0) -> Autoencoder:
    """One deep aekit Autoencoder holding the stack's weights (see the module docstring)."""
    first = stack.layers[0]
    widths = stack.widths
    sigma = getattr(first.likelihood, "log_sigma", None)  # a Gaussian likelihood: keep the first layer's sigma
    model = build(None, input_shape=first.input_shape,
                  backbone={"mlp": {"hidden": list(widths[:-1]), "activation": _hidden_act(stack.activation)}},
                  latent_dim=widths[-1], bottleneck={"deterministic": {"activation": stack.top_activation}},
                  likelihood=stack.likelihood if sigma is None else {stack.likelihood: {"sigma": float(torch.exp(sigma))}},
                  seed=seed)
    enc = [m for m in model.encoder.net if isinstance(m, nn.Linear)] + [model.bottleneck.linear]  # W_1 .. W_L
    dec = [m for m in model.decoder.net if isinstance(m, nn.Linear)]  # V_L .. V_1
    with torch.no_grad():
        for k, layer in enumerate(stack.layers):
            enc[k].weight.copy_(layer.bottleneck.linear.weight)
            enc[k].bias.copy_(layer.bottleneck.linear.bias)
            (v,) = [m for m in layer.decoder.net if isinstance(m, nn.Linear)]
            dec[len(dec) - 1 - k].weight.copy_(v.weight)
            dec[len(dec) - 1 - k].bias.copy_(v.bias)
    model.config["variant"] = "stacked"  # what `aekit evaluate` reports; load() rebuilds from the axes
    return model.eval()


@dataclass
class StackedResult:
    stack: Stack
    model: Autoencoder  # the assembled (and fine-tuned) deep autoencoder
    classifier: nn.Module | None  # StackedClassifier when finetune='classifier'
    history: list[dict]
    summary: dict


@torch.no_grad()
def _sse(model: Autoencoder, x: torch.Tensor | None) -> float | None:
    """Squared error summed over dimensions, mean over samples, of model.reconstruct(x)."""
    if x is None or x.shape[0] == 0:
        return None
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    total = sum(float((model.reconstruct(xb.to(device)) - xb.to(device)).pow(2).sum()) for xb in x.split(2048))
    model.train(was)
    return total / x.shape[0]


def fit_stacked(x_train: torch.Tensor, x_val: torch.Tensor | None = None, y_train=None, y_val=None, *, layers,
                layer_variant: str = "plain", finetune: str = "reconstruction", likelihood: str = "gaussian",
                activation: str | None = None, top_activation: str | None = None, corruption=None,
                regularizers: dict | None = None, config: TrainConfig | None = None, pretrain_epochs: int | None = None,
                pretrain_config=None, head_epochs: int = 5, max_time_per_layer=None, out_dir=None,
                run_info: dict | None = None, callbacks=None, seed: int = 0) -> StackedResult:
    """Pretrain, assemble, fine-tune; with out_dir, write a run directory that load_run reads.

    config: training options of the fine-tune (epochs) and, with epochs=pretrain_epochs, of each
    pretrained layer (or pretrain_config: one TrainConfig, or one per layer). The history holds every epoch, tagged phase=pretrain (with its layer),
    finetune, classifier_head or classifier_finetune.
    """
    from pathlib import Path

    from ... import checkpoint as ckpt
    from .classifier import CLASSIFIER_NAME, _check_labels, finetune_classifier, save_classifier

    check_choice("finetune", finetune, FINETUNE)
    widths = check_layers(layers)
    layer_settings(layer_variant, activation=activation, top_activation=top_activation)  # fail before training
    has_val = x_val is not None and x_val.shape[0] > 0
    if finetune == "classifier":  # no labels: say so before any training
        _check_labels(y_train, x_train.shape[0], "the training split")
        if has_val:
            _check_labels(y_val, x_val.shape[0], "the validation split")
    cfg = config or TrainConfig()
    pre_cfg = pretrain_config or dataclasses.replace(cfg, epochs=pretrain_epochs or cfg.epochs)
    stack = pretrain_stack(x_train, x_val, layers=widths, layer_variant=layer_variant, likelihood=likelihood,
                           activation=activation, top_activation=top_activation, corruption=corruption,
                           regularizers=regularizers, config=pre_cfg, max_time_per_layer=max_time_per_layer,
                           seed=seed, callbacks=callbacks)
    model = assemble_autoencoder(stack, seed=seed)
    probe = x_val if has_val else x_train[:4096]
    summary = {"layers": widths, "layer_variant": layer_variant, "finetune": finetune, "activation": stack.activation,
               "top_activation": stack.top_activation, "likelihood": likelihood, "pretrain": stack.summary,
               "sse_pretrained": _sse(model, probe), "sse_on": "val" if has_val else "train"}
    out = Path(out_dir) if out_dir is not None else None
    info = {**(run_info or {}), "variant": "stacked"}
    history = list(stack.history)
    classifier = None
    if finetune == "reconstruction":
        def tag(record, trainer):
            for cb in callbacks or []:
                cb({"phase": "finetune", **record}, trainer)

        trainer = Trainer(model, cfg, out_dir=out, run_info=info, callbacks=[tag])  # keeps its best model in out
        trainer.fit(x_train, x_val)
        history += [{"phase": "finetune", **r} for r in trainer.history]
    elif finetune == "classifier":
        classifier, records, summary["classifier"] = finetune_classifier(
            model, x_train, y_train, x_val if has_val else None, y_val if has_val else None, config=cfg,
            head_epochs=head_epochs, callbacks=callbacks)
        history += records
    model.eval()
    summary["sse_finetuned"] = _sse(model, probe) if finetune != "none" else summary["sse_pretrained"]
    if out is not None:
        if finetune != "reconstruction":
            ckpt.save(model, out)
        if classifier is not None:
            save_classifier(classifier, out)
        elif (out / CLASSIFIER_NAME).exists():
            (out / CLASSIFIER_NAME).unlink()  # a stale head of an overwritten run
        ckpt.atomic_write_json(out / "run.json", _jsonable({**info, "train": dataclasses.asdict(cfg),
                                                            "model": model.config, "stacked": summary}))
        write_history(out, history)
    return StackedResult(stack=stack, model=model, classifier=classifier, history=history, summary=summary)


def write_history(out_dir, history: list[dict]) -> None:
    """history.json and history.csv (one row per epoch, the union of keys as columns)."""
    from pathlib import Path

    from ... import checkpoint as ckpt

    out_dir = Path(out_dir)
    ckpt.atomic_write_json(out_dir / "history.json", history)
    keys: list[str] = []
    for r in history:
        keys += [k for k in r if k not in keys]
    lines = [",".join(keys)] + [",".join("" if r.get(k) is None else str(r[k]) for k in keys) for r in history]
    ckpt.atomic_write_bytes(out_dir / "history.csv", ("\n".join(lines) + "\n").encode())


from ...build import _jsonable  # noqa: E402
from .classifier import StackedClassifier, accuracy, load_classifier, predict  # noqa: E402

__all__ = ["CODE_ACTS", "FINETUNE", "LAYER_VARIANTS", "Stack", "StackedClassifier", "StackedResult", "fit_stacked",
           "write_history", "accuracy", "assemble_autoencoder",
           "check_layers", "layer_settings", "load_classifier", "predict", "pretrain_stack", "stacked_decode",
           "stacked_encode"]
