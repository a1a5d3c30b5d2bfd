"""Why the capacity-annealed VAE collapses on procedural dSprites: short probes of its settings.

Each setting trains annealed_vae (conv 16-32-32-64 + FC 256-256, 10 units, Bernoulli decoder, batch
64, Adam with aekit's warm-up and cosine decay) on 32,000 random dsprites32 images for 4 epochs
(2,000 steps), seed 0, and records the validation NLL after each 500 steps and the active units
at the end (posterior-mean variance > 0.01 over 1,000 held-out images). A run that stays at
~138 nats (the mean image) has an input-independent posterior. The control is the plain
beta-VAE (gamma 4, C 0: the term is 4 KL).

Each setting is a JSON object: gamma, C (C_max, nats), cfrac (share of the steps over which C
rises; 0: C_max from the start), wfrac (share over which gamma rises from 0), lr, loss ('abs':
gamma |KL - C|, the paper's; 'hinge': gamma max(0, KL - C)), klw (kl_prior kl_weight: the KL's own weight
under the capacity term).

    python benchmarks/annealed_probe.py '[{"gamma": 100, "C": 20, "loss": "hinge"}]' --log probe.jsonl
    python benchmarks/annealed_probe.py --from-log probe.jsonl      # tabulate, write results/annealed_probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("settings", nargs="?", default="[]", help="JSON list of settings")
    p.add_argument("--samples", type=int, default=32_000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--log", default=None, help="append each finished setting (JSON, one a line) to this file")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: all epochs)")
    p.add_argument("--trace", type=int, default=0,
                   help="every N steps record the collapse diagnostics (see trace_step); 0: none")
    p.add_argument("--from-log", default=None, help="train nothing: tabulate this log and write the results file")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from benchmarks.common import markdown, write_results

    if args.from_log and any("trace" in json.loads(line) for line in Path(args.from_log).read_text().splitlines()
                             if line.strip()):
        return write_traces(args.from_log)
    if args.from_log:
        rows = [json.loads(line) for line in Path(args.from_log).read_text().splitlines() if line.strip()]
        table = markdown([{"setting": json.dumps(r["setting"]), "val NLL per 500 steps": r["hist_nll"],
                           "active units": r["active"], "train CPU min": r["cpu_min"]} for r in rows],
                         ["setting", "val NLL per 500 steps", "active units", "train CPU min"])
        print(table)
        path = write_results("annealed_probe", {
            "title": "Capacity-annealed VAE on dsprites32: short probes (2,000 steps, seed 0) of what collapses",
            "table": table, "threads": 1, "runs": rows,
            "note": "Only the hinge form max(0, KL - C) leaves the mean-image plateau (~138 nats); every setting "
                    "of the two-sided |KL - C| stays on it with 0 active units, also with C_max from the start "
                    "(so the early C = 0 phase is not the cause). A (KL - C)^2 / 2 form was also tried "
                    "(gamma 100, C 20 and gamma 1000, C 25: 0 active units, 138.3 nats) and not kept."})
        print(f"wrote {path}")
        return 0

    import aekit
    from aekit.data import dsprites, load_data
    from aekit.metrics.likelihood import active_units
    from aekit.training.trainer import TrainConfig, Trainer

    ds = load_data("dsprites32", max_samples=args.samples, val_fraction=0.02, seed=0)
    x_eval = dsprites.render(dsprites.random_indices(1000, seed=1), resolution=32)
    steps = -(-ds.train.shape[0] // 64) * args.epochs if args.steps is None else args.steps
    for s in json.loads(args.settings):
        kl = {"beta": s["gamma"], "capacity": s["C"], "capacity_steps": int(s.get("cfrac", 0.8) * steps),
              "warmup_steps": int(s.get("wfrac", 0.0) * steps), "capacity_loss": s.get("loss", "abs"),
              "kl_weight": s.get("klw", 0.0), "capacity_on": s.get("on", "kl")}
        model = aekit.build("annealed_vae", input_shape=ds.shape,
                            backbone={"conv": {"channels": [16, 32, 32, 64], "hidden": [256, 256]}},
                            latent_dim=10, regularizers={"kl_prior": kl}, seed=0)
        if s.get("form") == "sample":  # gamma * mean_i |KL_i - C|: the per-sample form (a probe only)
            model.regularizers["kl_prior"].forward = per_sample_capacity(model.regularizers["kl_prior"])
        trace: list[dict] = []
        holder: dict = {}
        if args.trace:
            x_diag = dsprites.render(dsprites.random_indices(512, seed=2), resolution=32)  # (512, 1, 32, 32)
            model.after_optimizer_step = lambda group: trace_step(model, holder, trace, x_diag, args.trace)
        t0 = time.process_time()
        train = ds.train if args.steps is None else ds.train[: 64 * args.steps]
        epochs = args.epochs if args.steps is None else 1
        trainer = Trainer(model, TrainConfig(epochs=epochs, batch_size=64, lr=s.get("lr", 2e-3), seed=0,
                                             progress=False))
        holder["trainer"] = trainer
        res = trainer.fit(train, ds.val)
        if args.trace:
            del model.after_optimizer_step
        row = {"setting": s, "steps": steps, "cpu_min": round((time.process_time() - t0) / 60, 2),
               "active": active_units(model, x_eval)["active_units"],
               "hist_nll": [round(h["val_nll"], 1) for h in res.history],
               "hist_term": [round(h.get("val_kl_prior", 0), 2) for h in res.history],
               "load (1 min)": round(os.getloadavg()[0], 2)}
        if trace:
            row["trace"] = trace
            for t in trace:
                print(json.dumps(t), flush=True)
        print(json.dumps({k: v for k, v in row.items() if k != "trace"}), flush=True)
        if args.log:
            with open(args.log, "a") as log:
                log.write(json.dumps(row) + "\n")
    return 0


def write_traces(log: str) -> int:
    """Tabulate traced probes (--trace) into results/annealed_probe_trace.json: the diagnostics at the last step,
    and each term's share of Adam's gradient scale in the encoder averaged over the traced steps from 400 on."""
    from benchmarks.common import markdown, write_results

    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    table_rows = []
    for r in rows:
        last, late = r["trace"][-1], [t for t in r["trace"] if t["step"] >= 400]
        share = lambda key: round(sum(t[key] for t in late) / len(late), 4)  # noqa: E731
        table_rows.append({"setting": json.dumps(r["setting"]), "val NLL per 500 steps": r["hist_nll"],
                           "active units": r["active"], "KL": last["kl"], "var_mu": last["var_mu"],
                           "offset": last["offset"], "KL mean term": last["kl_mean_term"],
                           "KL var term": last["kl_var_term"], "dec W_z norm (first trace)": f"{last['dec_w']} "
                           f"({r['trace'][0]['dec_w']})", "dead ReLU": last["dead_relu"],
                           "Adam share NLL": share("adam_nll"), "Adam share reg": share("adam_reg"),
                           "train CPU min": r["cpu_min"]})
    table = markdown(table_rows, list(table_rows[0]))
    print(table)
    path = write_results("annealed_probe_trace", {
        "title": "Capacity-annealed VAE on dsprites32: why |KL - C| collapses, traced (2,000 steps, seed 0)",
        "table": table, "threads": 1, "runs": rows,
        "note": "Diagnostics on 512 fixed held-out images at the last step (trace_step in annealed_probe.py): var_mu "
                "= sum_j Var_x[mu_j(x)], offset = sum_j mean(mu_j)^2, KL mean term = 0.5 E[mu^2] summed, KL var term "
                "= 0.5 E[s^2 - 1 - log s^2] summed, the decoder's weights on z (Frobenius norm, at the first trace in "
                "brackets), the share of encoder ReLU units zero on all 512 images; 'Adam share' = a term's encoder "
                "gradient norm over the root of the summed Adam second moments (mean over steps >= 400)."})
    print(f"wrote {path}")
    return 0


def per_sample_capacity(reg):
    """kl_prior's forward with |KL_i - C| per sample instead of |mean_i KL_i - C| (hypothesis b)."""

    def forward(ctx):
        kl = ctx.code.posterior.kl_per_unit().sum(dim=1)  # (B,)
        c = reg.current_capacity()
        if reg.training:
            reg.step += 1
        return (kl - c).abs() if reg.capacity_loss == "abs" else (kl - c).clamp(min=0)

    return forward


def trace_step(model, holder: dict, trace: list, x_diag, every: int) -> None:
    """Every `every` optimizer steps, the collapse diagnostics on 512 fixed held-out images (train mode, one sample):

    - var_mu: sum over units of the variance of the posterior mean over the inputs (the information the code
      can carry; 0 for an input-independent posterior), offset: sum_j mean(mu_j)^2 (a constant shift),
      kl_mean_term = 0.5 E[mu^2] summed (= 0.5 (var_mu + offset)), kl_var_term = 0.5 E[s^2 - 1 - log s^2] summed;
    - dec_w: the Frobenius norm of the decoder's first weights on z (10 -> 256), and its initial value's ratio;
    - dead_relu: the share of encoder ReLU units that are zero on all 512 inputs;
    - g_nll, g_reg: the encoder's (backbone + bottleneck) gradient norms of the NLL and of the weighted KL
      term on the first 64 images, and adam_nll, adam_reg: each norm over the root of the summed (bias-corrected)
      Adam second moments of those parameters: a term's share of the gradient scale Adam divides by (a share
      << 1: that term's steps are shrunk by it).
    """
    import torch

    trainer = holder.get("trainer")
    step = trainer.step + 1 if trainer is not None else 0  # the trainer counts the step after this hook
    if step % every:
        return
    reg = model.regularizers["kl_prior"]
    saved = reg.step.clone()
    enc_params = [p for m in (model.encoder, model.bottleneck) for p in m.parameters()]
    dead = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: dead.append((out.flatten(1) > 0).any(0)))
             for m in model.encoder.modules() if isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        code, _ = model.encode_code(x_diag)
    for h in hooks:
        h.remove()
    alive = torch.cat(dead)
    mu, lv = code.posterior.mu, code.posterior.logvar  # (512, D)
    out = model(x_diag[:64])  # train mode: a sample of z, as in training
    reg.step.copy_(saved)  # the diagnostic forward does not advance the schedule
    w_nll = out.weights["nll"] * out.terms["nll"]
    w_reg = sum(out.weights[k] * out.terms[k] for k in out.terms if k.startswith("kl_prior"))
    g_nll = torch.autograd.grad(w_nll, enc_params, retain_graph=True, allow_unused=True)
    g_reg = torch.autograd.grad(w_reg, enc_params, allow_unused=True)
    opt = trainer.optimizers[0]

    def norms(grads):
        plain, second = 0.0, 0.0
        for p, g in zip(enc_params, grads):
            if g is None:
                continue
            plain += float(g.pow(2).sum())
            st = opt.state.get(p, {})
            if "exp_avg_sq" in st:
                second += float(st["exp_avg_sq"].sum() / (1 - opt.defaults["betas"][1] ** float(st["step"])))
        return plain ** 0.5, (plain / second) ** 0.5 if second > 0 else float("nan")

    (gn, an), (gr, ar) = norms(g_nll), norms(g_reg)
    w = model.decoder.project[0].weight
    row = {"step": step, "C": round(reg.current_capacity(), 3), "nll": round(float(out.terms["nll"].detach()), 2),
           "kl": round(float(code.posterior.kl().mean()), 3),
           "var_mu": round(float(mu.var(0).sum()), 4), "offset": round(float(mu.mean(0).pow(2).sum()), 4),
           "kl_mean_term": round(float(0.5 * mu.pow(2).mean(0).sum()), 3),
           "kl_var_term": round(float(0.5 * (lv.exp() - 1 - lv).mean(0).sum()), 3),
           "mean_logvar": round(float(lv.mean()), 3), "dec_w": round(float(w.norm()), 4),
           "dead_relu": round(1 - float(alive.float().mean()), 4),
           "g_nll": round(gn, 4), "g_reg": round(gr, 4), "adam_nll": round(an, 3), "adam_reg": round(ar, 3)}
    trace.append(row)


if __name__ == "__main__":
    sys.exit(main())
