"""Divergence estimators behind the distribution-matching and disentangling objectives.

- MMD (maximum mean discrepancy) between codes and prior samples with an RBF or an inverse
  multiquadric kernel, the unbiased U-statistic of Gretton et al. 2012; WAE-MMD (Tolstikhin et
  al. 2018) and InfoVAE (Zhao et al. 2019) penalise it.
- The total-correlation decomposition of the KL term (Chen et al. 2018, beta-TC-VAE) with
  minibatch-weighted sampling: E[KL(q(z|x) || p(z))] = MI + TC + dimension-wise KL.
- DIP-VAE's moment matching of the aggregate posterior's covariance to the identity (Kumar et
  al. 2018): type I uses Cov[mu(x)], type II adds E[diag sigma^2(x)].
- The KL's split into a Gaussian-channel information part and the mismatch of the aggregate
  posterior's moments with the prior, per unit: the capacity of Burgess et al. 2018 measured on
  the information only (kl_prior capacity_on='information').
- The importance-weighted bound (Burda et al. 2016): log (1/K) sum_k w_k, which for K = 1 is the
  ELBO's single-sample estimate exactly.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------- kernels and MMD
def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances, clamped at 0 against round-off."""
    return (a.pow(2).sum(1, keepdim=True) - 2.0 * a @ b.T + b.pow(2).sum(1).unsqueeze(0)).clamp_min(0.0)


def rbf_kernel(a: torch.Tensor, b: torch.Tensor, *, scale: float) -> torch.Tensor:
    """k(x, y) = exp(-||x - y||^2 / (2 s^2)); (N, M)."""
    return torch.exp(-squared_distances(a, b) / (2.0 * scale * scale))


def imq_kernel(a: torch.Tensor, b: torch.Tensor, *, scale: float) -> torch.Tensor:
    """k(x, y) = C / (C + ||x - y||^2) with C = 2 D s^2 (Tolstikhin et al. 2018, the prior's scale s); (N, M)."""
    c = 2.0 * a.shape[1] * scale * scale
    return c / (c + squared_distances(a, b))


KERNELS = {"rbf": rbf_kernel, "imq": imq_kernel}


def mmd_unbiased(x: torch.Tensor, y: torch.Tensor, *, kernel: str = "imq", scale: float = 1.0) -> torch.Tensor:
    """Unbiased MMD^2 between samples x (N, D) and y (M, D), N, M >= 2 (Gretton et al. 2012, eq. 3):

        1/(N(N-1)) sum_{i != j} k(x_i, x_j) + 1/(M(M-1)) sum_{i != j} k(y_i, y_j) - 2/(NM) sum_{i,j} k(x_i, y_j)

    Can be slightly negative (it is unbiased); 0 in expectation when x and y share a distribution.
    """
    k = KERNELS[kernel]
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x, scale=scale), k(y, y, scale=scale), k(x, y, scale=scale)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


# ---------------------------------------------------------------------- total correlation
def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) per dimension (broadcasting); no sum."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, dataset_size: int) -> dict:
    """Per-sample MI, TC and dimension-wise KL of a batch (Chen et al. 2018, minibatch-weighted sampling).

    z, mu, logvar: (B, D); z_i ~ q(z | x_i). With log q(z_i) estimated as
    logsumexp_j log q(z_i | x_j) - log(N B) (N = dataset_size) and likewise per dimension:

        mi   = log q(z_i | x_i) - log q(z_i)
        tc   = log q(z_i) - sum_d log q(z_id)
        dwkl = sum_d log q(z_id) - log p(z_i)

    so mi + tc + dwkl = log q(z_i | x_i) - log p(z_i) exactly: a one-sample estimate of KL(q(z|x_i) || p(z)).
    Returns {'mi', 'tc', 'dwkl'}, each (B,).
    """
    b = z.shape[0]
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(1)  # (B,)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)  # (B,)
    pair = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))  # (B, B, D): q(z_i,d | x_j)
    log_nb = math.log(dataset_size * b)
    log_qz = torch.logsumexp(pair.sum(2), dim=1) - log_nb  # (B,)
    log_prod_qzd = (torch.logsumexp(pair, dim=1) - log_nb).sum(1)  # (B,)
    return {"mi": log_qz_x - log_qz, "tc": log_qz - log_prod_qzd, "dwkl": log_prod_qzd - log_pz}


# ---------------------------------------------------------------------- DIP-VAE
def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, *, kind: str) -> torch.Tensor:
    """DIP-VAE's covariance of the aggregate posterior, (D, D) (Kumar et al. 2018, eq. 6 and 8).

    kind 'i':  Cov_x[mu(x)]
    kind 'ii': Cov_x[mu(x)] + E_x[diag exp(logvar(x))]  (the covariance of q(z) itself)
    """
    centred = mu - mu.mean(0, keepdim=True)  # (B, D)
    cov = centred.T @ centred / mu.shape[0]  # (D, D), the batch (biased) covariance as in the paper
    if kind == "ii":
        cov = cov + torch.diag(torch.exp(logvar).mean(0))
    return cov


def dip_penalty(cov: torch.Tensor, *, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2; a scalar."""
    diag = cov.diagonal()
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1.0).pow(2).sum()


# ---------------------------------------------------------------------- the KL's information part
def kl_information_split(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch-mean KL(q(z|x) || N(0, I)) per unit split exactly into information + marginal; each (D,).

    Per unit j over the batch: m = mean(mu), V = var(mu) + mean(s^2) (the moments of the aggregate
    posterior q(z_j), batch variance without Bessel's correction), and

        information_j = 0.5 (log V - mean(log s^2))         >= 0.5 log(1 + var(mu) / mean(s^2)) >= 0
        marginal_j    = KL(N(m, V) || N(0, 1)) = 0.5 (V + m^2 - 1 - log V)  >= 0

    whose sum is mean_b KL_j = 0.5 mean(mu^2 + s^2 - 1 - log s^2). The information part is the capacity of a
    Gaussian channel (exactly 0.5 log(1 + var(mu) / s^2) when every input has the same s): 0 for a posterior
    that does not depend on the input, whatever its mean offset or variance; the marginal part is what a shifted
    or widened aggregate posterior costs. (A per-unit, moment-matched proxy of I(x; z_j) + KL(q(z_j) || p(z_j)),
    the split of the averaged KL in Hoffman & Johnson 2016, ELBO surgery.)
    """
    m = mu.mean(0)  # (D,)
    var_total = mu.var(0, unbiased=False) + torch.exp(logvar).mean(0)  # (D,) V, the aggregate's variance
    log_v = torch.log(var_total)
    information = 0.5 * (log_v - logvar.mean(0))  # (D,)
    marginal = 0.5 * (var_total + m.pow(2) - 1.0 - log_v)  # (D,)
    return information, marginal


# ---------------------------------------------------------------------- importance weighting
def iwae_objective(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k exp(log_w_k) for log weights (K, B) -> (B,); K = 1 returns log_w[0] itself."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
