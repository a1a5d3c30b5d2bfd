"""The named variants: each a few lines that pick a point in the product of axes.

A recipe returns the build() keywords it sets, each axis as a spec (a name or
{name: {parameter: value}}); `build(variant, **overrides)` starts from the library defaults,
applies the recipe, then the caller's overrides (an axis the caller names differently replaces
the recipe's; the same name merges the parameters). Any unnamed combination is a plain
`build(...)` call with the axes spelled out. VARIANTS is a registry (aekit.registry): a recipe
joins with `@VARIANTS.register("name")`, and the contract suite covers it.
"""

from __future__ import annotations

from .registry import VARIANTS


@VARIANTS.register("ae")
def ae() -> dict:
    """Undercomplete autoencoder: one hidden layer, a code narrower than the input.
    Rumelhart, Hinton & Williams 1986; Goodfellow, Bengio & Courville 2016, ch. 14.1."""
    return {"backbone": {"mlp": {"hidden": [256]}}, "latent_dim": 32}


@VARIANTS.register("linear")
def linear() -> dict:
    """Linear autoencoder: no nonlinearity anywhere; at its optimum the code spans the top-k principal subspace,
    where training starts (init='pca': solved from the training data before the first step).
    Baldi & Hornik 1989, Neural networks and principal component analysis."""
    return {"backbone": {"mlp": {"hidden": [], "activation": "identity"}},
            "bottleneck": {"deterministic": {"activation": "none"}}, "latent_dim": 8, "init": "pca"}


@VARIANTS.register("deep")
def deep() -> dict:
    """Deep autoencoder 784-1000-500-250-30 (mirrored).
    Hinton & Salakhutdinov 2006, Reducing the dimensionality of data with neural networks."""
    return {"backbone": {"mlp": {"hidden": [1000, 500, 250]}}, "latent_dim": 30}


@VARIANTS.register("conv")
def conv() -> dict:
    """Convolutional autoencoder: strided Conv2d down, ConvTranspose2d up.
    Masci et al. 2011, Stacked convolutional auto-encoders for hierarchical feature extraction."""
    return {"backbone": {"conv": {"channels": [32, 64]}}, "latent_dim": 16}


@VARIANTS.register("dae")
def dae() -> dict:
    """Denoising autoencoder: reconstruct the clean input from a masked one.
    Vincent et al. 2008, Extracting and composing robust features with denoising autoencoders."""
    return {"backbone": {"mlp": {"hidden": [256]}}, "latent_dim": 32, "corruption": {"masking": {"p": 0.25}}}


@VARIANTS.register("sparse_l1")
def sparse_l1() -> dict:
    """Sparse autoencoder with an L1 penalty on ReLU code activations.
    Goodfellow, Bengio & Courville 2016, ch. 14.2.1; Ranzato et al. 2007."""
    return {"backbone": {"mlp": {"hidden": [256]}}, "latent_dim": 64,
            "bottleneck": {"deterministic": {"activation": "relu"}},
            "regularizers": {"l1_activity": {"weight": 1e-3}}}


@VARIANTS.register("sparse_kl")
def sparse_kl() -> dict:
    """Sparse autoencoder: KL(rho || rho_hat) on the mean activation of sigmoid code units; works overcomplete.
    Ng 2011, CS294A lecture notes, Sparse autoencoder."""
    return {"backbone": {"mlp": {"hidden": [256]}}, "latent_dim": 64,
            "bottleneck": {"deterministic": {"activation": "sigmoid"}},
            "regularizers": {"kl_sparsity": {"rho": 0.05, "weight": 3.0}}}


@VARIANTS.register("cae")
def cae() -> dict:
    """Contractive autoencoder: one sigmoid layer plus the squared Frobenius norm of its Jacobian.
    Rifai et al. 2011, Contractive auto-encoders: explicit invariance during feature extraction."""
    return {"backbone": {"mlp": {"hidden": []}}, "latent_dim": 32,
            "bottleneck": {"deterministic": {"activation": "sigmoid"}},
            "regularizers": {"contractive": {"weight": 0.1, "method": "auto"}}}


@VARIANTS.register("vae")
def vae() -> dict:
    """Variational autoencoder: Gaussian posterior, reparameterisation, Bernoulli decoder, ELBO.
    Kingma & Welling 2014, Auto-encoding variational Bayes."""
    return {"backbone": {"mlp": {"hidden": [512, 256]}}, "latent_dim": 16, "bottleneck": "gaussian",
            "likelihood": "bernoulli", "regularizers": {"kl_prior": {"beta": 1.0}}}


@VARIANTS.register("beta_vae")
def beta_vae() -> dict:
    """beta-VAE: the VAE with the KL weighted by beta > 1 for disentangled codes.
    Higgins et al. 2017, beta-VAE: learning basic visual concepts with a constrained variational framework."""
    return {**vae(), "latent_dim": 10, "regularizers": {"kl_prior": {"beta": 4.0}}}


@VARIANTS.register("cvae")
def cvae() -> dict:
    """Conditional VAE: the one-hot label is an extra input to encoder and decoder; class-conditional sampling.
    Sohn, Lee & Yan 2015, Learning structured output representation using deep conditional generative models."""
    return {**vae(), "num_classes": 10}  # the CLI sets num_classes from the data's labels


@VARIANTS.register("annealed_vae")
def annealed_vae() -> dict:
    """Capacity-annealed beta-VAE: gamma * max(0, I - C) with the cap C raised linearly to C_max; conv backbone.
    The paper's gamma, C_max and schedule (64 x 64 dSprites, 100,000 steps); on shorter runs set capacity_steps to
    about 80 % of the run. Two changes from the paper's gamma * |KL - C|, both measured on procedural 32 x 32
    dSprites (benchmarks/README.md):
    - C bounds the information part I of the batch KL (kl_prior capacity_on='information'; the rest, the aggregate
      posterior's mismatch with the prior, is penalised with gamma too). With the whole KL as the target the
      encoder meets C without information (one offset of every posterior mean: 18 of 20 nats, Var_x[mu] = 0) and
      never leaves the mean-image plateau; an input-independent posterior has information 0.
    - The hinge (capacity_loss='hinge'): C caps the information instead of also pushing it up, which spent spare
      capacity on many weak units (two-sided: MIG 0.323 / 0.095 on two validation seeds, hinge 0.382 / 0.415).
    Starting C at about half of C_max (kl_prior capacity_start, in nats: not a recipe default, set it with
    capacity) keeps one unit from taking x and y together while C is small: with gamma 30, C 4 -> 8 nats over
    20,000 of 25,000 steps, MIG 0.433 (0.406-0.450) on 3 seeds (beta-VAE b=4 on the same steps: 0.418;
    benchmarks/results/disentanglement_annealed_start.json); from C = 0 the same run gave 0.099.
    Burgess et al. 2018, Understanding disentangling in beta-VAE."""
    return {**beta_vae(), "backbone": {"conv": {"channels": [32, 32, 64, 64], "hidden": [256, 256]}},
            "regularizers": {"kl_prior": {"beta": 1000.0, "capacity": 25.0, "capacity_steps": 100000,
                                          "capacity_on": "information", "capacity_loss": "hinge"}}}


@VARIANTS.register("ksparse")
def ksparse() -> dict:
    """k-sparse autoencoder: a linear code of which only the k largest units of each input stay active.
    Makhzani & Frey 2013, k-sparse autoencoders."""
    return {"backbone": {"mlp": {"hidden": []}}, "latent_dim": 100, "bottleneck": {"topk": {"k": 25}}}


@VARIANTS.register("vq_vae")
def vq_vae() -> dict:
    """VQ-VAE: the code is its nearest entry of a 512-entry codebook (EMA updates, dead entries restarted),
    straight-through gradients and a commitment loss; samples through a prior fitted on the training indices.
    van den Oord, Vinyals & Kavukcuoglu 2017, Neural discrete representation learning."""
    return {"backbone": {"mlp": {"hidden": [512, 256]}}, "latent_dim": 16, "likelihood": "bernoulli",
            "bottleneck": {"vq": {"num_codes": 512, "beta": 0.25, "ema_decay": 0.99, "restart_after": 100}}}


@VARIANTS.register("fsq_vae")
def fsq_vae() -> dict:
    """FSQ autoencoder: four code dimensions rounded to 8, 5, 5, 5 levels (1,000 implicit codes), no codebook loss.
    Mentzer, Minnen, Agustsson & Tschannen 2023, Finite scalar quantization: VQ-VAE made simple."""
    return {"backbone": {"mlp": {"hidden": [512, 256]}}, "latent_dim": 4, "likelihood": "bernoulli",
            "bottleneck": {"fsq": {"levels": [8, 5, 5, 5]}}}


@VARIANTS.register("batch_topk")
def batch_topk() -> dict:
    """BatchTopK sparse autoencoder: the B*k largest ReLU activations of the batch stay (k per input on average);
    inference thresholds at the level estimated in training.
    Bussmann, Leask & Nanda 2024, BatchTopK sparse autoencoders."""
    return {"backbone": {"mlp": {"hidden": []}}, "latent_dim": 100, "bottleneck": {"batch_topk": {"k": 25}}}


@VARIANTS.register("wae_mmd")
def wae_mmd() -> dict:
    """Wasserstein autoencoder (WAE-MMD): a deterministic 8-unit code, squared-error cost and lambda = 10 times
    the MMD (inverse multiquadric kernel) between the codes and N(0, I).
    Tolstikhin, Bousquet, Gelly & Schoelkopf 2018, Wasserstein auto-encoders."""
    return {"backbone": {"mlp": {"hidden": [512, 256]}}, "latent_dim": 8, "likelihood": "gaussian",
            "bottleneck": "deterministic", "regularizers": {"mmd": {"kernel": "imq", "scale": 1.0, "weight": 10.0}}}


# alpha = 0 is the paper's MMD-VAE; lambda = 1000 puts an MMD of ~0.01-0.1 on the scale of a summed-pixel NLL
INFO_VAE_ALPHA, INFO_VAE_LAMBDA = 0.0, 1000.0


@VARIANTS.register("info_vae")
def info_vae() -> dict:
    """InfoVAE (MMD-VAE): Gaussian posterior, (1 - alpha) KL(q(z|x) || p(z)) plus (alpha + lambda - 1) MMD(q(z), p(z));
    alpha = 0, lambda = 1000.
    Zhao, Song & Ermon 2019, InfoVAE: balancing learning and inference in variational autoencoders."""
    a, lam = INFO_VAE_ALPHA, INFO_VAE_LAMBDA
    return {**vae(), "regularizers": {"kl_prior": {"beta": 1.0 - a},
                                      "mmd": {"kernel": "imq", "scale": 1.0, "weight": a + lam - 1.0}}}


@VARIANTS.register("beta_tc_vae")
def beta_tc_vae() -> dict:
    """beta-TC-VAE: the KL split into mutual information, total correlation and dimension-wise KL (minibatch-
    weighted sampling), the total correlation weighted beta = 6; set tc dataset_size to the training set's size.
    Chen, Li, Grosse & Duvenaud 2018, Isolating sources of disentanglement in variational autoencoders."""
    return {**vae(), "latent_dim": 10, "regularizers": {"tc": {"alpha": 1.0, "beta": 6.0, "gamma": 1.0}}}


@VARIANTS.register("dip_vae_i")
def dip_vae_i() -> dict:
    """DIP-VAE-I: the VAE plus matching Cov[mu(x)] to the identity (lambda_od = 10, lambda_d = 10 lambda_od).
    Kumar, Sattigeri & Balakrishnan 2018, Variational inference of disentangled latent concepts (DIP-VAE)."""
    return {**vae(), "latent_dim": 10,
            "regularizers": {"kl_prior": {"beta": 1.0}, "dip": {"kind": "i", "lambda_od": 10.0, "lambda_d": 100.0}}}


@VARIANTS.register("dip_vae_ii")
def dip_vae_ii() -> dict:
    """DIP-VAE-II: the VAE plus matching the covariance of q(z) (Cov[mu] + E[diag sigma^2]) to the identity
    (lambda_od = lambda_d = 10).
    Kumar, Sattigeri & Balakrishnan 2018, Variational inference of disentangled latent concepts (DIP-VAE)."""
    return {**vae(), "latent_dim": 10,
            "regularizers": {"kl_prior": {"beta": 1.0}, "dip": {"kind": "ii", "lambda_od": 10.0, "lambda_d": 10.0}}}


@VARIANTS.register("iwae")
def iwae() -> dict:
    """Importance-weighted autoencoder: the VAE's network trained on the K = 5 sample bound
    log (1/K) sum_k p(x, z_k) / q(z_k | x) (K = 1 is the ELBO).
    Burda, Grosse & Salakhutdinov 2016, Importance weighted autoencoders."""
    return {**vae(), "bottleneck": {"gaussian": {"iwae_k": 5}}, "regularizers": {}}


@VARIANTS.register("vampprior")
def vampprior() -> dict:
    """VAE with a VampPrior: the prior is the mixture of the posteriors of 500 learned pseudo-inputs; the KL to it
    is estimated by one sample.
    Tomczak & Welling 2018, VAE with a VampPrior."""
    return {**vae(), "regularizers": {"kl_vamp": {"components": 500, "beta": 1.0}}}


@VARIANTS.register("rae")
def rae() -> dict:
    """Regularized autoencoder (RAE-L2): a deterministic code, squared error, beta ||z||^2 / 2 and an L2 penalty on
    the decoder's weights; generative through an ex-post Gaussian mixture (aekit.tasks.ex_post).
    Ghosh, Sajjadi, Vergari, Black & Schoelkopf 2020, From variational to deterministic autoencoders."""
    return {"backbone": {"mlp": {"hidden": [512, 256]}}, "latent_dim": 16, "likelihood": "gaussian",
            "bottleneck": "deterministic", "regularizers": {"rae": {"beta": 1e-4, "decoder_weight": 1e-7}}}


@VARIANTS.register("aae")
def aae() -> dict:
    """Adversarial autoencoder: a deterministic 8-unit code pushed towards N(0, I) by a discriminator on codes
    (prior draws against the encoder's codes) that trains in its own optimizer group; squared-error reconstruction.
    Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016, Adversarial autoencoders."""
    return {"backbone": {"mlp": {"hidden": [512, 256]}}, "latent_dim": 8, "likelihood": "gaussian",
            "bottleneck": "deterministic", "regularizers": {"adversarial": {"weight": 1.0, "hidden": [256, 256]}}}


@VARIANTS.register("factor_vae")
def factor_vae() -> dict:
    """FactorVAE: the VAE plus gamma = 10 times the total correlation of q(z), estimated by a discriminator between
    codes and dimension-wise permuted codes that trains in its own optimizer group.
    Kim & Mnih 2018, Disentangling by factorising."""
    return {**vae(), "latent_dim": 10,
            "regularizers": {"kl_prior": {"beta": 1.0}, "factor_tc": {"gamma": 10.0, "hidden": [256, 256, 256]}}}
