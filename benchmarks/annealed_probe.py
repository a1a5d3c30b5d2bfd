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
    p.add_argument("--from-log", default=None, help="train nothing: tabulate this log and write the results file")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from benchmarks.common import markdown, write_results

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
    steps = -(-ds.train.shape[0] // 64) * args.epochs
    for s in json.loads(args.settings):
        kl = {"beta": s["gamma"], "capacity": s["C"], "capacity_steps": int(s.get("cfrac", 0.8) * steps),
              "warmup_steps": int(s.get("wfrac", 0.0) * steps), "capacity_loss": s.get("loss", "abs"),
              "kl_weight": s.get("klw", 0.0)}
        model = aekit.build("annealed_vae", input_shape=ds.shape,
                            backbone={"conv": {"channels": [16, 32, 32, 64], "hidden": [256, 256]}},
                            latent_dim=10, regularizers={"kl_prior": kl}, seed=0)
        t0 = time.process_time()
        res = Trainer(model, TrainConfig(epochs=args.epochs, batch_size=64, lr=s.get("lr", 2e-3), seed=0,
                                         progress=False)).fit(ds.train, ds.val)
        row = {"setting": s, "steps": steps, "cpu_min": round((time.process_time() - t0) / 60, 2),
               "active": active_units(model, x_eval)["active_units"],
               "hist_nll": [round(h["val_nll"], 1) for h in res.history],
               "hist_term": [round(h.get("val_kl_prior", 0), 2) for h in res.history],
               "load (1 min)": round(os.getloadavg()[0], 2)}
        print(json.dumps(row), flush=True)
        if args.log:
            with open(args.log, "a") as log:
                log.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
