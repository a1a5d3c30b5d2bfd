"""PyOD's AutoEncoder and DeepSVDD on splits handed over by odds_anomaly.py (run with PyOD's own Python).

PyOD lives in a side virtual environment (it must not change the main torch), so odds_anomaly.py
writes the splits to an .npz and runs this script there:

    /tmp/pyod-venv/bin/python benchmarks/odds_pyod_worker.py SPLITS.npz SCORES.npz

SPLITS.npz holds train_<i>, test_<i> (standardized on train_<i>, PyOD's protocol) and seed_<i>;
SCORES.npz gets <model>_<i> outlier scores of test_<i> (higher = more unusual) and
<model>_<i>_seconds. PyOD's defaults, random_state = the split's seed.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)

from pyod.models.auto_encoder import AutoEncoder  # noqa: E402
from pyod.models.deep_svdd import DeepSVDD  # noqa: E402


def main(src: str, dst: str) -> None:
    data = np.load(src)
    n = sum(1 for k in data.files if k.startswith("train_"))
    out = {}
    for i in range(n):
        xtr, xte, seed = data[f"train_{i}"], data[f"test_{i}"], int(data[f"seed_{i}"])
        for name, make in (("pyod_autoencoder", lambda: AutoEncoder(random_state=seed, verbose=0)),
                           ("pyod_deepsvdd", lambda: DeepSVDD(n_features=xtr.shape[1], random_state=seed, verbose=0))):
            t0 = time.process_time()
            det = make().fit(xtr)
            out[f"{name}_{i}"] = det.decision_function(xte)
            out[f"{name}_{i}_seconds"] = np.array(time.process_time() - t0)
    np.savez(dst, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
