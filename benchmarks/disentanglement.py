"""Disentanglement on procedural 32x32 dSprites: beta-VAE (beta = 1, 4, 8) and a capacity-annealed VAE, side by side.

Each setting trains a conv VAE with a Bernoulli decoder and a 10-unit code on a seeded random
subset of procedural dSprites (`dsprites32` by default: 32 x 32 binary images), then scores the
posterior means with MIG, the FactorVAE score, the beta-VAE score and DCI
(aekit.tasks.disentangle.evaluate_disentanglement) and measures the reconstruction error
(Bernoulli NLL, nats per image, and pixel MSE of the mean reconstruction) on held-out images.
Active units are those whose posterior mean varies over the data (variance > 0.01, Burda et al.);
"units KL > 0.01" counts units with a KL above 0.01 nats, which an input-independent posterior
(a constant mean away from 0) also has.
Training time is wall clock and process CPU time with --threads torch threads (default 1).

Target (issue 8): MIG >= 0.2 for the best setting within 30 CPU minutes of training.
The data is aekit's own 32 x 32 rendering of the dSprites factor grid and the protocol is 5,000
steps, not the published dSprites images (64 x 64) and protocols, so the scores are not compared
with published dSprites numbers.

    python benchmarks/disentanglement.py --parallel        # the full comparison, one 1-thread process per setting
    python benchmarks/disentanglement.py --quick           # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--source", default="dsprites32", choices=["dsprites32", "dsprites"])
    p.add_argument("--train-samples", type=int, default=64_000, help="random grid images to train on")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training subset per setting")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--channels", default="16,32,32,64", help="conv channels per level")
    p.add_argument("--conv-hidden", default="256,256",
                   help="fully connected widths between conv features and code ('' for none; default 256,256)")
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--activation", default="relu", help="hidden activation (relu, leaky_relu, elu, ...)")
    p.add_argument("--grad-clip", type=float, default=None, help="max global gradient norm (default: none)")
    p.add_argument("--betas", default="1,4,8", help="beta-VAE settings")
    p.add_argument("--gamma", type=float, default=100.0, help="annealed VAE: weight of |KL - C|")
    p.add_argument("--capacity", type=float, default=20.0, help="annealed VAE: C_max in nats")
    p.add_argument("--no-annealed", action="store_true", help="skip the annealed run")
    p.add_argument("--annealed-warmup", type=float, default=0.0,
                   help="annealed VAE: share of the steps over which gamma rises linearly from 0 "
                        "(kl_prior warmup_steps)")
    p.add_argument("--capacity-loss", default="abs", choices=["abs", "hinge"],
                   help="annealed VAE: gamma |KL - C| (abs, the paper's) or gamma max(0, KL - C) (hinge)")
    p.add_argument("--capacity-on", default="kl", choices=["kl", "information"],
                   help="annealed VAE: what C bounds, the whole KL (the paper's) or its information part, the "
                        "marginal part penalised gamma * KL(aggregate || prior) (kl_prior capacity_on)")
    p.add_argument("--capacity-start", type=float, default=0.0,
                   help="annealed VAE: C at step 0 in nats (kl_prior capacity_start; default 0, the paper's)")
    p.add_argument("--kl-weight", type=float, default=0.0,
                   help="annealed VAE: the KL's own weight under the capacity term (kl_prior kl_weight; default 0)")
    p.add_argument("--reference", default=None, metavar="NAME:SETTING",
                   help="add the runs of SETTING from benchmarks/results/NAME.json (same protocol, measured before) "
                        "to the table, e.g. 'disentanglement:beta-VAE b=4'")
    p.add_argument("--capacity-fraction", type=float, default=0.8,
                   help="annealed VAE: share of the steps over which C rises from 0 to C_max (default 0.8)")
    p.add_argument("--family", default="",
                   help="comma-separated extra settings: tc (beta-TC-VAE, beta 6), factor (FactorVAE, gamma "
                        "--factor-gamma), dip1 / dip2 (DIP-VAE I / II with the recipes' lambdas)")
    p.add_argument("--factor-gamma", type=float, default=20.0, help="FactorVAE: weight of the TC estimate")
    p.add_argument("--disc-lr", type=float, default=1e-3, help="FactorVAE: the discriminator's Adam learning rate")
    p.add_argument("--eval-samples", type=int, default=10_000, help="images scored by MIG and DCI")
    p.add_argument("--votes", type=int, default=500, help="training points of the beta-VAE / FactorVAE scores")
    p.add_argument("--seed", type=int, default=0, help="seed of the training subset and of the metrics")
    p.add_argument("--seeds", default="0,1,2", help="model and training seeds: every setting runs once per seed")
    p.add_argument("--quick", action="store_true", help="tiny smoke run; results are not written")
    p.add_argument("--out", default=None, help="also keep each run directory under this folder")
    p.add_argument("--results-name", default="disentanglement", help="benchmarks/results/NAME.json to write")
    p.add_argument("--parallel", action="store_true",
                   help="train the settings as concurrent 1-thread processes (wall time on a shared CPU)")
    p.add_argument("--runs-log", default=None, help="append each finished run (JSON, one a line) to this file")
    p.add_argument("--from-log", default=None,
                   help="train nothing: tabulate and write the runs recorded in this --runs-log file "
                        "(the same options)")
    p.add_argument("--setting", type=int, default=None, help=argparse.SUPPRESS)   # one setting (a --parallel part)
    p.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_parallel(args, argv, n_settings: int) -> list[dict]:
    """Launch one process per setting (same options), wait, and return their rows in order."""
    import subprocess
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="aekit-disentangle-"))
    base = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--parallel"]
    procs = []
    for i in range(n_settings):
        cmd = [sys.executable, str(Path(__file__).resolve()), *base, "--setting", str(i),
               "--json-out", str(tmp / f"{i}.json")]
        procs.append(subprocess.Popen(cmd))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"a setting failed (exit codes {codes})")
    return [json.loads((tmp / f"{i}.json").read_text()) for i in range(n_settings)]


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    import aekit
    from aekit.data import load_data
    from aekit.data import dsprites
    from aekit.tasks.disentangle import evaluate_disentanglement
    from aekit.metrics.likelihood import active_units
    from aekit.training.trainer import TrainConfig, Trainer
    from benchmarks.common import markdown, write_results

    if args.quick:
        args.train_samples, args.epochs, args.eval_samples, args.votes = 3000, 1, 2000, 100
    ds = load_data(args.source, max_samples=args.train_samples, val_fraction=0.02, seed=args.seed)
    resolution = dsprites.SOURCES[args.source]
    channels = [int(c) for c in args.channels.split(",")]
    conv_hidden = [int(c) for c in args.conv_hidden.split(",") if c.strip()]
    steps_per_epoch = -(-ds.train.shape[0] // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    kinds = [(f"beta-VAE b={b:g}", "beta_vae", {"kl_prior": {"beta": float(b)}}) for b in
             (float(s) for s in args.betas.split(",") if s.strip())]
    family = {"tc": ("beta-TC-VAE b=6", "beta_tc_vae",
                     {"tc": {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "dataset_size": int(ds.train.shape[0])}}),
              "factor": (f"FactorVAE g={args.factor_gamma:g}", "factor_vae",
                         {"factor_tc": {"gamma": args.factor_gamma, "disc_lr": args.disc_lr}}),
              "dip1": ("DIP-VAE-I od=10 d=100", "dip_vae_i", {}),
              "dip2": ("DIP-VAE-II od=10 d=10", "dip_vae_ii", {})}
    if not args.no_annealed:
        warm = f" warm-up {args.annealed_warmup:g}" if args.annealed_warmup else ""
        form = (" hinge" if args.capacity_loss == "hinge" else "") + (f" +{args.kl_weight:g}KL" if args.kl_weight else "")
        form = (" info" if args.capacity_on == "information" else "") + form
        start = f" C0={args.capacity_start:g}" if args.capacity_start else ""
        kinds.append((f"annealed{form} g={args.gamma:g}{start} C={args.capacity:g}{warm}", "annealed_vae",
                      {"kl_prior": {"beta": args.gamma, "capacity": args.capacity,
                                    "capacity_steps": int(args.capacity_fraction * total_steps),
                                    "warmup_steps": int(args.annealed_warmup * total_steps),
                                    "capacity_loss": args.capacity_loss, "kl_weight": args.kl_weight,
                                    **({"capacity_on": args.capacity_on} if args.capacity_on != "kl" else {}),
                                    **({"capacity_start": args.capacity_start} if args.capacity_start else {})}}))
    for key in (k.strip() for k in args.family.split(",") if k.strip()):
        if key not in family:
            raise SystemExit(f"--family: unknown setting {key!r}; choose from {', '.join(family)}")
        kinds.append(family[key])
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    settings = [(name, variant, regs, seed) for name, variant, regs in kinds for seed in seeds]
    print(f"# {args.source}: {ds.train.shape[0]} training images, {args.epochs} epochs x {steps_per_epoch} steps "
          f"(batch {args.batch_size}), conv {channels}, fc {conv_hidden}, latent {args.latent_dim}, {args.threads} thread(s)", flush=True)

    # held-out images for the reconstruction error
    x_eval = dsprites.render(dsprites.random_indices(2000, seed=args.seed + 1), resolution=resolution)
    rows, raw = [], []
    wall_start = time.perf_counter()
    if args.parallel:
        raw = run_parallel(args, argv, len(settings))
        rows = [{k: v for k, v in r.items() if k not in ("scores", "kl_per_unit", "history_last")} for r in raw]
        settings = []
    elif args.setting is not None:
        settings = [settings[args.setting]]
    elif args.from_log:
        raw = [json.loads(line) for line in Path(args.from_log).read_text().splitlines() if line.strip()]
        rows = [{k: v for k, v in r.items() if k not in ("scores", "kl_per_unit", "history_last")} for r in raw]
        settings = []
    for name, variant, regs, seed in settings:
        model = aekit.build(variant, input_shape=ds.shape, backbone="conv", channels=channels,
                            conv_hidden=conv_hidden, latent_dim=args.latent_dim, regularizers=regs, seed=seed,
                            activation=args.activation)
        out_dir = Path(args.out) / f"{variant_dir(name)}_s{seed}" if args.out else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, progress=False,
                          grad_clip=args.grad_clip)
        run_info = {"variant": variant, "dataset": ds.to_dict(),   # recorded so `aekit disentangle RUN` works
                    "data": {"source": args.source, "max_samples": args.train_samples, "val_fraction": 0.02,
                             "seed": args.seed}}
        result = Trainer(model, cfg, out_dir=out_dir, run_info=run_info).fit(ds.train, ds.val)
        train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        model.eval()
        with torch.no_grad():
            params = torch.cat([model.decode_params(model.encode(x)) for x in x_eval.split(500)])
            nll = float(model.likelihood.nll(x_eval, params).mean())
            mse = float(((torch.sigmoid(params) - x_eval) ** 2).flatten(1).sum(1).mean())
            kl = torch.cat([model.encode_code(x)[0].posterior.kl_per_unit() for x in x_eval.split(500)]).mean(0)
        scores = evaluate_disentanglement(model, resolution=resolution, n_samples=args.eval_samples,
                                          n_votes=args.votes, seed=args.seed)
        row = {"setting": name, "seed": seed, "MIG": round(scores["mig"], 3), "FactorVAE": round(scores["factorvae_score"], 3),
               "beta-VAE score": round(scores["betavae_score"], 3), "DCI": round(scores["dci"], 3),
               "recon BCE (nats/img)": round(nll, 1), "recon SSE (px/img)": round(mse, 1),
               "KL (nats)": round(float(kl.sum()), 1), "units KL > 0.01": int((kl > 0.01).sum()),
               "active units": active_units(model, x_eval)["active_units"],
               "train min (wall)": round(train_wall / 60, 2), "train CPU min": round(train_cpu / 60, 2),
               "load (1 min)": round(os.getloadavg()[0], 2)}
        rows.append(row)
        raw.append({**row, "scores": scores, "kl_per_unit": [round(float(v), 4) for v in kl],
                    "history_last": result.history[-1] if result.history else None})
        print(json.dumps(row), flush=True)
        if args.runs_log:
            with open(args.runs_log, "a") as log:
                log.write(json.dumps(raw[-1]) + "\n")
    if args.json_out:  # a --parallel part: hand the row back to the parent
        Path(args.json_out).write_text(json.dumps(raw[0]))
        return 0
    total_wall = time.perf_counter() - wall_start
    reference = None
    if args.reference:
        ref_name, _, ref_setting = args.reference.partition(":")
        from benchmarks.common import RESULTS

        ref = json.loads((RESULTS / f"{ref_name}.json").read_text())  # a published results file, read only
        ref_rows = [{k: v for k, v in r.items() if k not in ("scores", "kl_per_unit", "history_last")}
                    for r in ref["runs"] if r["setting"] == ref_setting]
        if not ref_rows:
            raise SystemExit(f"--reference: no runs of {ref_setting!r} in {ref_name}.json")
        reference = {"file": f"benchmarks/results/{ref_name}.json", "date": ref.get("date"), "setting": ref_setting,
                     "command": ref.get("command")}
        rows = [{**r, "setting": f"{r['setting']} (ref.)", "load (1 min)": None} for r in ref_rows] + rows
    summary = summarize(rows)
    table = markdown(summary, list(summary[0])) + "\n\nPer run:\n\n" + markdown(rows, list(rows[0]))
    print(table)
    own = [r for r in summary if not r["setting"].endswith("(ref.)")] or summary  # a reference is not this run's
    best = max(own, key=lambda r: r["MIG mean"])
    met = best["MIG mean"] >= 0.2 and best["train CPU min (max)"] <= 30 * args.threads
    print(f"best mean MIG {best['MIG mean']} ({best['setting']}, {best['runs']} seeds), target MIG >= 0.2 within "
          f"30 CPU minutes: {'met' if met else 'missed'}; total wall {total_wall / 60:.1f} min")
    if not args.quick:
        path = write_results(args.results_name, {
            "title": f"Disentanglement on procedural {resolution}x{resolution} dSprites ({args.source}, aekit's own "
                     f"rendering, not the published images; {total_steps} steps per run, "
                     f"{len(seeds)} seed(s) per setting): " + ", ".join(r["setting"] for r in summary),
            "table": table,
            "target": "MIG >= 0.2 for the best setting within 30 CPU minutes of training (procedural data and a "
                      "short protocol: not comparable with published dSprites results)",
            "met": bool(met), "best": best["setting"], "best_mean_mig": best["MIG mean"], "threads": args.threads,
            "summary": summary,
            "reference": reference,
            "parallel_processes": len(rows) if args.parallel else 1, "load_average_end": list(os.getloadavg()),
            "total_wall_minutes": round(total_wall / 60, 2) if not args.from_log else
            round(sum(r["train min (wall)"] for r in raw), 2),
            "setup": {"family": args.family, "factor_gamma": args.factor_gamma, "disc_lr": args.disc_lr,
                      "annealed_warmup": args.annealed_warmup, "capacity_loss": args.capacity_loss,
                      "capacity_on": args.capacity_on, "capacity_start": args.capacity_start,
                      "kl_weight": args.kl_weight,
                      "capacity_fraction": args.capacity_fraction, "gamma": args.gamma, "capacity": args.capacity,
                      "source": args.source, "train_samples": int(ds.train.shape[0]), "epochs": args.epochs,
                      "steps": total_steps, "batch_size": args.batch_size, "lr": args.lr, "channels": channels,
                      "conv_hidden": conv_hidden, "activation": args.activation, "grad_clip": args.grad_clip,
                      "latent_dim": args.latent_dim, "eval_samples": args.eval_samples, "votes": args.votes,
                      "seed": args.seed, "seeds": seeds},
            "runs": raw,
        })
        print(f"wrote {path}")
    return 0


def summarize(rows: list[dict]) -> list[dict]:
    """One row per setting over its seeds: mean and range of MIG, means of the other scores."""
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        runs = [r for r in rows if r["setting"] == name]
        mean = lambda key: round(sum(r[key] for r in runs) / len(runs), 3)  # noqa: E731
        migs = [r["MIG"] for r in runs]
        out.append({"setting": name, "runs": len(runs), "MIG mean": mean("MIG"), "MIG min": min(migs),
                    "MIG max": max(migs), "FactorVAE": mean("FactorVAE"), "beta-VAE score": mean("beta-VAE score"),
                    "DCI": mean("DCI"), "recon BCE (nats/img)": round(mean("recon BCE (nats/img)"), 1),
                    "KL (nats)": round(mean("KL (nats)"), 1), "active units": mean("active units"),
                    "units KL > 0.01": mean("units KL > 0.01"),
                    "train CPU min (max)": max(r["train CPU min"] for r in runs)})
    return out


def variant_dir(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


if __name__ == "__main__":
    sys.exit(main())
