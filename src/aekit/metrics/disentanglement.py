"""Disentanglement metrics: MIG, the beta-VAE score, the FactorVAE score and DCI.

Inputs: codes (N, D) floats (e.g. posterior means) and factors (N, K) integer classes of the
generative factors (e.g. dSprites' shape, scale, orientation, x, y). Every function is seeded
and deterministic; NumPy and scikit-learn only (call it after training, not between steps).

- mig(codes, factors): Mutual Information Gap (Chen et al. 2018, "Isolating sources of
  disentanglement in VAEs"). Each code unit is discretized into 20 equal-width bins; for each
  factor k, the gap between the two largest I(z_j; v_k) divided by H(v_k), averaged over
  factors. A factor with more than 20 classes cannot reach 1 (binning loses information).
- betavae_score(...): Higgins et al. 2017. One training point: pick a factor k, draw L pairs
  of inputs that share factor k (everything else random), feature = mean |z1 - z2| over the
  pairs (D,); a logistic regression predicts k; the score is its held-out accuracy.
- factorvae_score(...): Kim & Mnih 2018. Codes are divided by their global standard
  deviation; one vote: pick a factor k, draw L inputs sharing factor k, take the unit of least
  variance over them; a majority-vote classifier unit -> factor is fit on the training votes;
  the score is its accuracy on held-out votes. Units of (near) zero global variance (collapsed
  units) are left out, as in the paper.
- dci(codes, factors): Eastwood & Williams 2018. A random forest per factor predicts the factor
  class from the code; its feature importances form R (D, K). Disentanglement = sum_j rho_j
  (1 - H_K(P_j.)), completeness = mean_k (1 - H_D(P_.k)), informativeness = mean held-out
  accuracy. The scalar `dci` is the disentanglement.

Batches with one factor fixed, for the two scores that need them, come from either of:

  arrays   betavae_score(codes, factors): rows sharing the value of factor k are drawn (with
           replacement) from the given (codes, factors), e.g. 10,000 encoded random samples;
  sampler  betavae_score(encode_factors=f, factor_sizes=(3, 6, 40, 32, 32)): the metric draws
           factor classes itself (uniform, factor k fixed to a random value) and calls
           f(classes (n, K) int64) -> codes (n, D), e.g. render the images and encode them.
           This is the paper's protocol; `aekit disentangle` uses it for dSprites.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError

MIG_BINS = 20
EncodeFactors = Callable[[np.ndarray], np.ndarray]  # factor classes (n, K) int64 -> codes (n, D)


def _check(codes, factors) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(codes, dtype=np.float64)
    f = np.asarray(factors)
    if z.ndim != 2 or f.ndim != 2 or z.shape[0] != f.shape[0] or z.shape[0] < 2:
        raise ConfigError(f"codes must be (N, D) and factors (N, K) with the same N >= 2; got codes {z.shape}, "
                          f"factors {f.shape}.")
    if not np.issubdtype(f.dtype, np.integer):
        if not np.all(np.equal(np.mod(f, 1), 0)):
            raise ConfigError("factors must hold integer classes (N, K); got non-integer values.")
        f = f.astype(np.int64)
    if not np.isfinite(z).all():
        raise ConfigError("codes contain NaN or inf values.")
    return z, f.astype(np.int64)


def _dense(v: np.ndarray) -> np.ndarray:
    """Relabel values to 0..n-1 (any integers)."""
    return np.unique(v, return_inverse=True)[1].reshape(-1)


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats of two discrete (N,) label arrays, from their joint histogram."""
    a, b = _dense(a), _dense(b)
    na, nb = a.max() + 1, b.max() + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / a.size   # (na, nb)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def entropy(a: np.ndarray) -> float:
    """H(a) in nats of a discrete (N,) label array."""
    p = np.bincount(_dense(a)) / a.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def discretize(codes: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """(N, D) floats -> (N, D) bin numbers in [0, bins): equal-width bins over each unit's range."""
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins=bins)
        out[:, j] = np.clip(np.digitize(codes[:, j], edges[1:-1]), 0, bins - 1)
    return out


def mutual_information_matrix(codes, factors, *, bins: int = MIG_BINS) -> np.ndarray:
    """I(z_j; v_k) in nats for every code unit j and factor k: (D, K)."""
    z, f = _check(codes, factors)
    zd = discretize(z, bins)
    return np.array([[mutual_information(zd[:, j], f[:, k]) for k in range(f.shape[1])] for j in range(z.shape[1])])


def mig(codes, factors, *, bins: int = MIG_BINS, per_factor: bool = False):
    """Mutual Information Gap in [0, 1]; per_factor=True returns (mig, (K,) gaps) instead."""
    z, f = _check(codes, factors)
    m = mutual_information_matrix(z, f, bins=bins)                   # (D, K)
    h = np.array([entropy(f[:, k]) for k in range(f.shape[1])])      # (K,)
    top = np.sort(m, axis=0)[::-1]                                   # (D, K) descending per factor
    second = top[1] if m.shape[0] > 1 else np.zeros(m.shape[1])
    keep = h > 0                                                     # a constant factor has nothing to find
    if not keep.any():
        raise ConfigError("every factor is constant over these samples; MIG is undefined.")
    gaps = np.where(keep, (top[0] - second) / np.where(keep, h, 1.0), np.nan)
    score = float(np.nanmean(gaps))
    return (score, gaps) if per_factor else score


# ---------------------------------------------------------------- batches with one factor fixed
class _FixedFactorBatches:
    """Codes of L inputs that share the value of factor k, from arrays or from a sampler."""

    def __init__(self, codes, factors, encode_factors: EncodeFactors | None, factor_sizes) -> None:
        if encode_factors is not None:
            if codes is not None or factors is not None:
                raise ConfigError("pass either codes and factors (arrays) or encode_factors and factor_sizes "
                                  "(a sampler), not both.")
            if factor_sizes is None or len(factor_sizes) < 1 or min(int(s) for s in factor_sizes) < 1:
                raise ConfigError(f"encode_factors needs factor_sizes, the number of classes per factor; "
                                  f"got {factor_sizes!r}.")
            self.encode, self.sizes = encode_factors, [int(s) for s in factor_sizes]
            self.codes = self.factors = None
        else:
            if codes is None or factors is None:
                raise ConfigError("pass codes (N, D) and factors (N, K), or encode_factors and factor_sizes.")
            self.codes, self.factors = _check(codes, factors)
            self.encode = None
            # per factor: rows sorted by its value, and each value's block [start, start + count)
            self.order = [np.argsort(self.factors[:, k], kind="stable") for k in range(self.factors.shape[1])]
            self.blocks = []
            for k in range(self.factors.shape[1]):
                _, start, count = np.unique(self.factors[self.order[k], k], return_index=True, return_counts=True)
                self.blocks.append((start, count))
            self.sizes = [len(start) for start, _ in self.blocks]
        self.num_factors = len(self.sizes)
        # factors with a single value cannot be told apart by holding them fixed
        self.usable = [k for k, s in enumerate(self.sizes) if s > 1]
        if not self.usable:
            raise ConfigError("every factor has a single value; there is nothing to hold fixed.")

    def _rows(self, k: int, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random row (with replacement) whose factor k has the values[i]-th distinct value: (n,)."""
        start, count = self.blocks[k]
        pick = start[values] + np.floor(rng.random(values.size) * count[values]).astype(np.int64)
        return self.order[k][pick]

    def sample_codes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Codes of n inputs with every factor random: (n, D)."""
        if self.encode is None:
            return self.codes[rng.integers(0, len(self.codes), size=n)]
        return self._encode(self._random_classes(n, rng))

    def _random_classes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.stack([rng.integers(0, s, size=n) for s in self.sizes], axis=1).astype(np.int64)  # (n, K)

    def _encode(self, classes: np.ndarray) -> np.ndarray:
        codes = np.asarray(self.encode(classes), dtype=np.float64)
        if codes.ndim != 2 or codes.shape[0] != classes.shape[0]:
            raise ConfigError(f"encode_factors must return codes (n, D) for n = {classes.shape[0]} factor rows; "
                              f"got shape {codes.shape}.")
        return codes

    def fixed(self, ks: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """For each factor k in ks (P,): codes of n inputs sharing one random value of k: (P, n, D).

        Every batch is drawn first and encoded in one call, so a sampler sees large batches.
        """
        p = len(ks)
        values = np.array([rng.integers(0, self.sizes[k]) for k in ks], dtype=np.int64)   # (P,)
        if self.encode is None:
            rows = np.stack([self._rows(int(k), np.full(n, v), rng) for k, v in zip(ks, values)])  # (P, n)
            return self.codes[rows]
        classes = self._random_classes(p * n, rng).reshape(p, n, -1)                    # (P, n, K)
        classes[np.arange(p), :, ks] = values[:, None]
        return self._encode(classes.reshape(p * n, -1)).reshape(p, n, -1)

    def pairs(self, ks: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """For each k in ks (P,): n pairs of codes whose inputs share factor k (a value per pair): (P, n, D) twice."""
        p = len(ks)
        if self.encode is None:
            a, b = [], []
            for k in ks:
                values = rng.integers(0, self.sizes[int(k)], size=n)                   # (n,) one value per pair
                a.append(self.codes[self._rows(int(k), values, rng)])
                b.append(self.codes[self._rows(int(k), values, rng)])
            return np.stack(a), np.stack(b)
        c1 = self._random_classes(p * n, rng).reshape(p, n, -1)                         # (P, n, K)
        c2 = self._random_classes(p * n, rng).reshape(p, n, -1)
        c2[np.arange(p), :, ks] = c1[np.arange(p), :, ks]
        codes = self._encode(np.concatenate([c1.reshape(p * n, -1), c2.reshape(p * n, -1)]))
        return codes[:p * n].reshape(p, n, -1), codes[p * n:].reshape(p, n, -1)


_CHUNK_POINTS = 64  # classifier points whose batches are drawn and encoded together


def _check_counts(**counts) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer; got {value!r}.")


def betavae_score(codes=None, factors=None, *, encode_factors: EncodeFactors | None = None,
                  factor_sizes: Sequence[int] | None = None, batch_size: int = 64, n_train: int = 1000,
                  n_eval: int = 500, seed: int = 0, details: bool = False):
    """beta-VAE score (held-out accuracy of a linear classifier of the fixed factor), in [0, 1].

    Chance is 1 / K. details=True returns a dict with train_accuracy and eval_accuracy.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _check_counts(batch_size=batch_size, n_train=n_train, n_eval=n_eval)
    src = _FixedFactorBatches(codes, factors, encode_factors, factor_sizes)
    rng = np.random.default_rng(seed)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        ks = rng.choice(src.usable, size=n)                  # (n,) the factor held fixed per point
        feats = []
        for i in range(0, n, _CHUNK_POINTS):
            a, b = src.pairs(ks[i:i + _CHUNK_POINTS], batch_size, rng)   # (P, L, D) each
            feats.append(np.abs(a - b).mean(axis=1))         # (P, D)
        return np.concatenate(feats), ks

    x_tr, y_tr = points(n_train)
    x_ev, y_ev = points(n_eval)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))  # scaled: fast, stable convergence
    clf.fit(x_tr, y_tr)
    train_acc, eval_acc = float(clf.score(x_tr, y_tr)), float(clf.score(x_ev, y_ev))
    return {"train_accuracy": train_acc, "eval_accuracy": eval_acc} if details else eval_acc


def factorvae_score(codes=None, factors=None, *, encode_factors: EncodeFactors | None = None,
                    factor_sizes: Sequence[int] | None = None, batch_size: int = 64, n_train: int = 1000,
                    n_eval: int = 500, n_variance: int = 5000, prune_fraction: float = 0.05, seed: int = 0,
                    details: bool = False):
    """FactorVAE score (held-out accuracy of the majority-vote classifier), in [0, 1].

    Units whose global variance is below prune_fraction times the largest one are left out
    (collapsed units); a code that is constant altogether scores at chance. details=True returns a dict with the accuracies, the vote matrix
    (D, K) and the active units.
    """
    _check_counts(batch_size=batch_size, n_train=n_train, n_eval=n_eval, n_variance=n_variance)
    src = _FixedFactorBatches(codes, factors, encode_factors, factor_sizes)
    rng = np.random.default_rng(seed)
    scale = src.sample_codes(n_variance, rng).std(axis=0)          # (D,) global sd
    active = scale ** 2 > prune_fraction * max(float((scale ** 2).max()), 1e-30)
    if not active.any():  # a constant code (full posterior collapse): every vote goes to one unit, so the
        active[0] = True  # classifier can only name the most frequent factor and scores at chance (~1/K)
    d, k_all = scale.size, src.num_factors

    def votes(n: int) -> np.ndarray:
        v = np.zeros((d, k_all), dtype=np.int64)                   # (D, K) counts: unit of least variance x factor
        ks = rng.choice(src.usable, size=n)
        for i in range(0, n, _CHUNK_POINTS):
            z = src.fixed(ks[i:i + _CHUNK_POINTS], batch_size, rng) / np.where(scale > 0, scale, 1.0)  # (P, L, D)
            var = np.where(active, z.var(axis=1, ddof=1), np.inf)  # (P, D)
            np.add.at(v, (np.argmin(var, axis=1), ks[i:i + _CHUNK_POINTS]), 1)
        return v

    v_tr, v_ev = votes(n_train), votes(n_eval)
    assign = v_tr.argmax(axis=1)                                   # (D,) unit -> the factor it votes for most
    train_acc = float(v_tr[np.arange(d), assign].sum() / max(v_tr.sum(), 1))
    eval_acc = float(v_ev[np.arange(d), assign].sum() / max(v_ev.sum(), 1))
    if details:
        return {"train_accuracy": train_acc, "eval_accuracy": eval_acc, "votes": v_tr.tolist(),
                "active_units": np.flatnonzero(active).tolist()}
    return eval_acc


def _normalized_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of p (rows sum to 1) with log base `base`: (rows,)."""
    q = np.where(p > 0, p, 1.0)
    return -(p * np.log(q)).sum(axis=1) / np.log(base) if base > 1 else np.zeros(p.shape[0])


def dci(codes, factors, *, train_fraction: float = 0.8, max_train: int = 5000, n_estimators: int = 20,
        max_depth: int | None = 8, seed: int = 0) -> dict:
    """DCI: {'disentanglement', 'completeness', 'informativeness', 'dci', 'importance'}.

    A RandomForestClassifier per factor (n_estimators trees of depth max_depth, every unit a
    split candidate) trained on the first train_fraction of a seeded permutation (at most
    max_train rows: the forests dominate the cost); informativeness is its accuracy on the rest.
    'dci' is the disentanglement score; 'importance' the (D, K) matrix as lists.
    """
    from sklearn.ensemble import RandomForestClassifier

    z, f = _check(codes, factors)
    if not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction must be in (0, 1); got {train_fraction!r}.")
    n, d = z.shape
    perm = np.random.default_rng(seed).permutation(n)
    cut = max(1, min(n - 1, int(round(train_fraction * n))))
    tr, ev = perm[:min(cut, max_train)], perm[cut:]
    importance = np.zeros((d, f.shape[1]))                         # (D, K)
    accuracy = []
    varying = [k for k in range(f.shape[1]) if np.unique(f[tr, k]).size >= 2]  # a constant factor: nothing to predict
    if not varying:
        raise ConfigError("every factor is constant over these samples; DCI is undefined.")
    for k in varying:
        rf = RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth, max_features=None,
                                    random_state=seed, n_jobs=1)  # every split sees every unit: no spread-out importance
        rf.fit(z[tr], f[tr, k])
        importance[:, k] = rf.feature_importances_
        accuracy.append(float(rf.score(z[ev], f[ev, k])))
    used = importance.sum(axis=0) > 0                              # factors some unit helps predict
    if not used.any():  # no tree found a split: the code carries nothing about any factor (e.g. a constant code)
        return {"disentanglement": 0.0, "completeness": 0.0, "informativeness": float(np.mean(accuracy)),
                "dci": 0.0, "importance": importance.tolist()}
    r = importance[:, used]                                        # (D, K')
    k_used = r.shape[1]
    unit_total = r.sum(axis=1)                                     # (D,)
    p_unit = r / np.where(unit_total > 0, unit_total, 1.0)[:, None]
    d_unit = 1.0 - _normalized_entropy(p_unit, k_used)             # (D,) disentanglement of each unit
    rho = unit_total / unit_total.sum()
    disentanglement = float((rho * d_unit).sum()) if k_used > 1 else 1.0
    p_factor = (r / r.sum(axis=0, keepdims=True)).T                # (K', D)
    completeness = float((1.0 - _normalized_entropy(p_factor, d)).mean())
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": float(np.mean(accuracy)), "dci": disentanglement,
            "importance": importance.tolist()}


__all__ = ["betavae_score", "dci", "discretize", "entropy", "factorvae_score", "mig", "mutual_information",
           "mutual_information_matrix"]
