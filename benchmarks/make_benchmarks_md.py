"""Generate BENCHMARKS.md from benchmarks/results/*.json: each results file's table and the command
that made it. Run after any benchmark:  python benchmarks/make_benchmarks_md.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["hinton2006", "vae_nll", "vae_nll_wide", "representation", "train_throughput"]
SKIP = {"train_throughput_sweep"}  # raw sweep data, summarised in benchmarks/README.md
TITLES = {
    "hinton2006": "Hinton & Salakhutdinov 2006 protocol (MNIST, 30-d code, test SSE per image; lr tuned on validation)",
    "vae_nll": "VAE test NLL on dynamically binarized MNIST (IWAE estimate), the paper's architecture",
    "vae_nll_wide": "VAE test NLL, a wider network than the paper's (784-512-512-50 ELU, 3.3x the parameters)",
    "representation": "Representation: linear probe and k-NN on 32-d MNIST codes",
    "train_throughput": "Training throughput and time to quality (1 thread; tutorial with its sigmoid output)",
    "train_throughput_cli_defaults": "Time to quality of what `aekit train ae --hidden 512,256 --latent-dim 32` builds "
                                     "(data-aware defaults) vs the tutorial loop, side by side (1 thread, idle machine)",
    "odds_anomaly_validation_widths": "ODDS validation parts (5 seeds, the test parts untouched): the detector with the "
                                      "4x-input width cap (aekit_detector, the default then) and without (est_wide); "
                                      "the command path with the 1,000-step budget (aekit_cli) and with 10 epochs (cli_e10)",
    "odds_anomaly_cli": "Anomaly detection on ten ODDS tables, PyOD's protocol (test AUROC, 10 seeds): the command "
                        "line's recommended detector `aekit detect --train` (aekit_detect), run as a user types it, "
                        "beside `aekit train ae` + `aekit detect RUN` (aekit_cli, one model) and the estimator",
    "denoising_defaults": "Denoising with `aekit train dae` given --epochs 10 --batch-size 128 (the defaults before the "
                          "1,000-step budget), against NL-means and BM3D tuned on validation",
    "denoising_defaults_mnist": "Denoising with the command-line defaults (`aekit train dae` + `aekit denoise`, no "
                                "option: U-Net, blind noise, at least 5,000 steps, the self-ensemble as the run chose it "
                                "on its validation images; dae_one_pass: --no-ensemble), MNIST, against NL-means and "
                                "BM3D tuned on validation",
    "denoising_defaults_photos": "Denoising with the command-line defaults, 32x32 patches of held-out natural photographs "
                                 "(trained on patches of 12 others), against NL-means and BM3D tuned on validation",
    "denoising_ensemble_validation": "The image DAE's denoising self-ensemble (tta8) and training on the 8 turns (aug), "
                                     "on validation images only: what chose the ensemble rule",
    "disentanglement_annealed_long": "The capacity-annealed VAE on the paper's longer schedule (25,000 steps, C on the "
                                     "information, hinge, gamma 30, C_max 8 nats, chosen on validation seeds 100 and 101), "
                                     "3 seeds, beside beta-VAE b=4 at 5,000 steps",
    "disentanglement_annealed_start": "The capacity-annealed VAE with C starting at 4 nats (C 4 -> 8 over 20,000 of "
                                      "25,000 steps, information, hinge, gamma 30; chosen on validation seeds 100 and "
                                      "101), 3 seeds, beside beta-VAE b=4 at 5,000 steps",
    "disentanglement_beta4_long": "beta-VAE b=4 on the annealed VAE's 25,000-step budget, 3 seeds: its equal-budget "
                                  "baseline",
    "disentanglement_annealed_validation": "The settings tried for the annealed VAE on validation seeds 100 and 101 "
                                           "(model and training seeds; never the reported 0, 1, 2): every run",
    "train_throughput_flush_1t": "Time to quality with subnormals flushed in training (1 thread): the tutorial loop, the same "
                                 "loop with the flush (not what users write), and what `aekit train ae --hidden 512,256 "
                                 "--latent-dim 32` builds",
    "train_throughput_flush_2t": "The same with 2 intra-op threads, plus aekit.build's gaussian model (aekit-default)",
    "train_throughput_second_edition": "Throughput of the second-edition trainer vs the tutorial loop: a 2-epoch run "
                                       "under load 3-5, throughput only (neither reaches SE 5.0 in 2 epochs)",
}


def main() -> int:
    results = ROOT / "benchmarks" / "results"
    names = [n for n in ORDER if (results / f"{n}.json").is_file()]
    # any other results file follows, in name order; its title comes from its "title" key
    names += sorted(p.stem for p in results.glob("*.json") if p.stem not in ORDER and p.stem not in SKIP
                   and not p.stem.endswith("_quick"))  # smoke runs of the scripts
    out = ["# Benchmarks", "", "Generated by `python benchmarks/make_benchmarks_md.py` from `benchmarks/results/*.json`;",
           "details, methods and the rules every benchmark follows in `benchmarks/README.md`.", ""]
    for name in names:
        data = json.loads((results / f"{name}.json").read_text())
        machine = data.get("machine") or {}
        out += [f"## {TITLES.get(name) or data.get('title') or name}", "",
                f"Command: `{data.get('command', '?')}`  ",
                f"Date: {data.get('date', '?')}; torch {machine.get('torch', data.get('torch', '?'))}, "
                f"threads {machine.get('threads', data.get('threads', '?'))}", ""]
        if "met" in data:
            out += [f"Target met: **{'yes' if data['met'] else 'no'}** (target {data.get('target')})", ""]
        if "met_cli" in data:
            out += [f"Command-line target met: **{'yes' if data['met_cli'] else 'no'}** (target {data.get('target_cli')})",
                    ""]
        if data.get("note"):
            out += [data["note"], ""]
        out += [data.get("table", "(no table in the results file)"), ""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote BENCHMARKS.md ({len(names)} sections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
