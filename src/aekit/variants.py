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
    """Capacity-annealed beta-VAE: gamma * |KL - C| with the KL target C raised linearly to C_max; conv backbone.
    Burgess et al. 2018, Understanding disentangling in beta-VAE."""
    return {**beta_vae(), "backbone": {"conv": {"channels": [32, 32, 64, 64], "hidden": [256, 256]}},
            "regularizers": {"kl_prior": {"beta": 1000.0, "capacity": 25.0, "capacity_steps": 100000}}}


@VARIANTS.register("ksparse")
def ksparse() -> dict:
    """k-sparse autoencoder: a linear code of which only the k largest units of each input stay active.
    Makhzani & Frey 2013, k-sparse autoencoders."""
    return {"backbone": {"mlp": {"hidden": []}}, "latent_dim": 100, "bottleneck": {"topk": {"k": 25}}}
