"""The evidence lower bound (Kingma & Welling 2014) in nats per image.

    ELBO(x) = E_q(z|x)[log p(x | z)] - KL(q(z | x) || N(0, I)),

estimated with `samples` reparameterised draws per image under a fixed seed; the KL is in closed
form. Bits per dimension = -ELBO / (D log 2).
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def elbo_terms(model, x: torch.Tensor, *, samples: int = 1, batch_size: int = 1000, seed: int = 0) -> dict:
    """x: (N, *shape) -> {'elbo', 'kl', 'nll_recon', 'bits_per_dim', 'kl_per_unit'} (nats per image)."""
    if not (hasattr(model, "provides") and model.provides("posterior")):
        raise ValueError("the ELBO needs a model with a Gaussian posterior")
    model.eval()
    rec_sum, kl_sum = 0.0, 0.0
    kl_units = torch.zeros(model.latent_dim, dtype=torch.float64, device=x.device)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    for i in range(0, x.shape[0], batch_size):
        xb = x[i:i + batch_size]
        code, skips = model.encode_code(xb)
        post = code.posterior
        rec = torch.zeros(xb.shape[0], dtype=torch.float64, device=xb.device)
        for _ in range(samples):
            z = post.sample(generator=gen)  # (B, D)
            rec += model.likelihood.nll(xb, model.decoder(z, skips)).double()
        rec_sum += float(rec.sum()) / samples
        kl = post.kl_per_unit().double()  # (B, D)
        kl_sum += float(kl.sum())
        kl_units += kl.sum(dim=0)
    n = x.shape[0]
    d = x[0].numel()
    elbo = -(rec_sum + kl_sum) / n
    return {"elbo": elbo, "kl": kl_sum / n, "nll_recon": rec_sum / n, "bits_per_dim": -elbo / (d * math.log(2)),
            "kl_per_unit": (kl_units / n).cpu().tolist()}


@torch.no_grad()
def iwae_bound(model, x: torch.Tensor, *, k: int = 1000, max_batch_elements: int = 50_000, seed: int = 0,
               return_per_sample: bool = False, progress: bool | None = None):
    """Importance-weighted estimate of log p(x) (Burda et al. 2016), nats per image.

        log p(x) >= log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x),   z_k ~ q(z | x),

    tight as K grows; -result is the test NLL reported in the VAE literature (K = 5000 there). p(z) is
    N(0, I), or the learned prior of a regularizer that defines log_prior (kl_vamp: the VampPrior).
    Batched over K and over images (K * B <= max_batch_elements decoded at once) under no_grad.
    Returns the mean over images (float) or the (N,) tensor. progress: a bar over the images (default:
    when stderr is a terminal; see aekit.training.progress).
    """
    if not (hasattr(model, "provides") and model.provides("posterior")):
        raise ValueError("the IWAE bound needs a model with a Gaussian posterior")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    model.eval()
    # the prior the model was trained with: a regularizer that defines log p(z) (kl_vamp), else N(0, I)
    learned = next((r for r in getattr(model, "regularizers", {}).values() if hasattr(r, "log_prior")), None)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    per_image = []
    batch = max(1, max_batch_elements // k)
    from ..training.progress import progress as bar

    for i in bar(range(0, x.shape[0], batch), desc=f"IWAE bound, K={k}", enabled=progress,
                 total=-(-x.shape[0] // batch)):
        xb = x[i:i + batch]  # (B, *shape)
        code, skips = model.encode_code(xb)
        post = code.posterior
        b, d = post.mu.shape
        chunks = []
        chunk_k = max(1, min(k, max_batch_elements // b))
        for start in range(0, k, chunk_k):
            kk = min(chunk_k, k - start)
            eps = torch.randn((kk, b, d), generator=gen, device=xb.device, dtype=post.mu.dtype)
            z = post.mu + post.std * eps  # (kk, B, D)
            params = model.decoder(z.reshape(kk * b, d), skips)  # (kk * B, *shape)
            x_rep = xb.unsqueeze(0).expand(kk, *xb.shape).reshape(kk * b, *xb.shape[1:])
            log_px_z = -model.likelihood.nll(x_rep, params).view(kk, b)  # (kk, B)
            if learned is None:
                log_pz = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(-1)  # (kk, B) standard normal prior
            else:  # a learned prior (kl_vamp's mixture), in chunks: each z meets all of its components
                zf = z.reshape(kk * b, d)
                log_pz = torch.cat([learned.log_prior(zf[j:j + 4096], model)
                                    for j in range(0, kk * b, 4096)]).view(kk, b)  # (kk, B)
            log_qz = post.log_prob(z)  # (kk, B)
            chunks.append((log_px_z + log_pz - log_qz).double())
        log_w = torch.cat(chunks)  # (K, B)
        per_image.append(torch.logsumexp(log_w, dim=0) - math.log(k))
    out = torch.cat(per_image)
    return out if return_per_sample else float(out.mean())


@torch.no_grad()
def active_units(model, x: torch.Tensor, *, threshold: float = 0.01, batch_size: int = 1000) -> dict:
    """Units whose posterior mean varies over the data: Var_x(E_q[z_u | x]) > threshold (Burda et al. 2016).

    Returns {'active_units': int, 'unit_variance': [D floats]}; works for any model's code mean.
    """
    model.eval()
    means = torch.cat([model.encode(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])  # (N, D)
    var = means.double().var(dim=0, unbiased=False)
    return {"active_units": int((var > threshold).sum()), "unit_variance": var.tolist()}
