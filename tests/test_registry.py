"""aekit.registry: registration, specs checked against signatures, capabilities."""

from __future__ import annotations

import pytest

from aekit.errors import ConfigError
from aekit.registry import Registry, RegistryError, check_requirements, parse_spec_string


def make():
    reg = Registry("bottleneck", structural=("in_features", "latent_dim"))

    @reg.register("topk")
    class TopK:
        """k-sparse code.
        Makhzani & Frey 2013."""
        provides = frozenset({"code", "sparse_code"})

        def __init__(self, *, in_features: int, latent_dim: int, k: int, aux_weight: float = 0.0,
                     levels: list[int] | None = None, normalize: bool = True) -> None:
            self.args = dict(in_features=in_features, latent_dim=latent_dim, k=k, aux_weight=aux_weight)

    @reg.register("gaussian")
    class Gaussian:
        """Gaussian posterior.
        Kingma & Welling 2014."""
        provides = frozenset({"code", "posterior"})

        def __init__(self, *, in_features: int, latent_dim: int) -> None:
            pass

    return reg


def test_twice_is_an_error():
    reg = make()
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("topk")(object)


def test_unknown_name_did_you_mean():
    with pytest.raises(ConfigError, match="Did you mean 'topk'"):
        make().get("topkk")


def test_spec_forms_agree_and_convert_types():
    reg = make()
    assert reg.spec("topk:k=16,aux_weight=0.5") == ("topk", {"k": 16, "aux_weight": 0.5})
    assert reg.spec({"topk": {"k": 16, "aux_weight": 0.5}}) == ("topk", {"k": 16, "aux_weight": 0.5})
    assert reg.spec("topk:k=2,levels=8;5;5,normalize=false")[1] == {"k": 2, "levels": [8, 5, 5], "normalize": False}
    assert reg.spec("gaussian") == ("gaussian", {})
    assert reg.create("topk:k=3", in_features=5, latent_dim=7).args == {"in_features": 5, "latent_dim": 7, "k": 3,
                                                                        "aux_weight": 0.0}


@pytest.mark.parametrize("spec,match", [
    ("topk", "needs the parameter"),
    ("topk:k=16,kk=2", "has no parameter 'kk'"),
    ("topk:k=two", "parameter 'k' must be an integer"),
    ({"topk": {"k": True}}, "must be an integer"),
    ("topk:k", "key=value"),
    ({"topk": 3}, "a name or"),
    (["topk"], "a name or"),
    ("topk:in_features=3,k=1", "has no parameter 'in_features'"),  # structural: the model supplies it
])
def test_bad_specs_name_the_problem(spec, match):
    with pytest.raises(ConfigError, match=match):
        make().spec(spec)


def test_describe_lists_parameters_and_reference():
    d = make().describe("topk")
    assert d["reference"] == "Makhzani & Frey 2013."
    assert [p["name"] for p in d["params"]] == ["k", "aux_weight", "levels", "normalize"]
    assert d["params"][0]["required"] and d["params"][1]["default"] == 0.0


def test_requirements_name_the_missing_capability_and_providers():
    bott = make()
    regs = Registry("regularizer")

    @regs.register("kl_prior")
    class KL:
        """KL to the prior."""
        requires = frozenset({"posterior"})

    assert "posterior" in check_requirements({"bottleneck": (bott, "gaussian", {}), "kl_prior": (regs, "kl_prior", {})})
    with pytest.raises(ConfigError, match="needs a 'posterior' capability.*bottleneck 'gaussian'"):
        check_requirements({"bottleneck": (bott, "topk", {"k": 1}), "regularizer": (regs, "kl_prior", {})})
    with pytest.raises(ConfigError, match="sample\\(\\).*'posterior'"):
        check_requirements({"bottleneck": (bott, "topk", {"k": 1})}, needs={"sample()": ["posterior"]})


def test_parse_spec_string_keeps_values_as_strings():
    assert parse_spec_string(" topk:k=16 ", what="x") == ("topk", {"k": "16"})
