"""`aekit disentangle RUN_DIR [--json]`: MIG, FactorVAE, beta-VAE and DCI scores of a dSprites run."""

from __future__ import annotations

import json

from ..tasks.disentangle import evaluate_disentanglement, source_resolution
from ..training.runs import load_run
from .parser import positive_int

KEYS = ("mig", "factorvae_score", "betavae_score", "dci", "dci_completeness", "dci_informativeness")


def add_disentangle_parser(sub) -> None:
    p = sub.add_parser("disentangle", help="disentanglement metrics of a run trained on dsprites / dsprites32",
                       description="Score a run's code (posterior means) against the generative factors of dSprites: "
                                   "MIG, FactorVAE score, beta-VAE score and DCI disentanglement.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by 'aekit train' on dsprites data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--samples", type=positive_int, default=10_000,
                   help="random images scored by MIG and DCI (default: %(default)s)")
    p.add_argument("--votes", type=positive_int, default=800,
                   help="training points of the FactorVAE / beta-VAE classifiers; half as many held out (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="images sharing one factor per point of those scores (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled images (default: %(default)s)")
    p.set_defaults(func=run_disentangle)


def run_disentangle(args) -> int:
    model, info = load_run(args.run_dir)
    resolution = source_resolution(model, (info.get("data") or {}).get("source"))
    scores = evaluate_disentanglement(model, resolution=resolution, n_samples=args.samples, n_votes=args.votes,
                                      batch_size=args.batch_size, seed=args.seed)
    if args.json:
        print(json.dumps(scores))
        return 0
    for key in KEYS:
        print(f"{key:>20}: {scores[key]:.4f}")
    per = "  ".join(f"{k}={v:.3f}" for k, v in scores["mig_per_factor"].items())
    print(f"{'mig per factor':>20}: {per}")
    print(f"{'images scored':>20}: {scores['n_samples']} ({scores['seconds']:.1f}s)")
    return 0
