"""aekit.training.precision: the choice checked against the device, autocast, and a GradScaler state that resumes exactly."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from aekit.errors import CheckpointError, ConfigError
from aekit.training import precision as P
from aekit.training.precision import Precision, make_precision


def test_unknown_precision_is_a_config_error_with_a_hint():
    with pytest.raises(ConfigError, match=r"precision must be one of '32', 'bf16-mixed', '16-mixed'; got 'bf16'\. "
                                          r"Did you mean 'bf16-mixed'"):
        make_precision("bf16", "cpu")


def test_fp16_on_cpu_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"precision='16-mixed' is for CUDA GPUs") as info:
        make_precision("16-mixed", torch.device("cpu"))
    assert "\n" not in str(info.value)


def test_bf16_on_a_cpu_without_amx_is_refused_with_the_measured_slowdown(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"bf16-mixed.*slower than '32'.*20x slower.*use precision='32'") as info:
        make_precision("bf16-mixed", "cpu")
    assert "\n" not in str(info.value)


def test_bf16_on_a_cpu_with_amx_autocasts_matmuls_to_bfloat16(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    prec = make_precision("bf16-mixed", "cpu")
    assert prec.scaler is None and prec.dtype is torch.bfloat16
    lin = torch.nn.Linear(4, 3)
    with prec.autocast():
        y = lin(torch.ones(2, 4))
    assert y.dtype is torch.bfloat16 and lin.weight.dtype is torch.float32  # mixed: the weights stay float32


def test_an_isa_limit_without_amx_means_no_native_bf16(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert P.cpu_has_native_bf16() is False


def test_native_bf16_detection_agrees_with_the_cpu_flags(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo flags line on this machine")
    if P.cpu_has_native_bf16():
        assert "amx_bf16" in flags or "amx_tile" in flags
    else:
        init = getattr(torch.cpu, "_init_amx", None)  # where torch has it: the kernel may withhold AMX
        assert "amx_tile" not in flags or (init is not None and not init())


def test_other_devices_are_refused_for_mixed_precision():
    with pytest.raises(ConfigError, match=r"precision='bf16-mixed' is supported on 'cuda' and 'cpu'.*'mps'"):
        make_precision("bf16-mixed", "mps")
    assert make_precision("32", "mps").scaler is None


def test_cuda_without_bf16_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(ConfigError, match=r"bf16-mixed' needs a GPU with bfloat16 .*'Tesla V100'.*'16-mixed'"):
        make_precision("bf16-mixed", "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_on_cuda_gets_a_grad_scaler():
    prec = make_precision("16-mixed", "cuda")
    assert isinstance(prec.scaler, torch.amp.GradScaler) and prec.scaler.is_enabled()


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 6))
    x = torch.randn(16, 6, generator=g)  # (16, 6)
    return model, x


def test_fp32_autocast_is_a_no_op_and_the_step_is_a_plain_step():
    prec = make_precision("32", "cpu")
    assert prec.scaler is None and prec.dtype is None
    model, x = _problem()
    twin = copy.deepcopy(model)
    opt, opt2 = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(twin.parameters(), lr=0.1)
    with prec.autocast():
        assert not torch.is_autocast_enabled("cpu")
        loss = ((model(x) - x) ** 2).mean()
    assert loss.dtype is torch.float32
    prec.backward(loss)
    prec.unscale_(opt)  # nothing without a scaler
    assert prec.step(opt) is True
    ((twin(x) - x) ** 2).mean().backward()
    opt2.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))  # bit-identical
    assert prec.state_dict() == {"precision": "32", "scaler": None}


def _scaled(init_scale=2.0 ** 4, growth_interval=2):
    """A 16-mixed Precision with a CPU GradScaler: the scaler's logic, testable without a GPU."""
    return Precision(name="16-mixed", device_type="cpu",
                     scaler=torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=growth_interval))


def _train(prec, model, opt, x, steps, poison=()):
    """steps scaled steps; a step in poison gets an inf loss (its gradients overflow) -> returns step() results."""
    done = []
    for i in steps:
        opt.zero_grad(set_to_none=True)
        loss = ((model(x) - x) ** 2).mean() * (float("inf") if i in poison else 1.0)
        prec.backward(loss)
        prec.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        done.append(prec.step(opt))
    return done


def test_grad_scaler_grows_backs_off_and_skips_as_the_rule_says():
    prec = _scaled()
    model, x = _problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    done = _train(prec, model, opt, x, range(2))
    assert done == [True, True] and prec.scaler.get_scale() == 2.0 ** 5  # 2 good steps = growth_interval: x2
    before = [p.detach().clone() for p in model.parameters()]
    assert _train(prec, model, opt, x, [2], poison={2}) == [False]  # inf gradients: skipped, scale x0.5
    assert prec.scaler.get_scale() == 2.0 ** 4
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_grad_scaler_state_round_trips_through_json_and_resumes_bit_identical():
    prec = _scaled()
    model, x = _problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _train(prec, model, opt, x, range(3), poison={1})  # scale and growth counter both off their initial values
    state = json.loads(json.dumps(prec.state_dict()))  # JSON-able: stored in a checkpoint without pickle
    assert state["precision"] == "16-mixed" and state["scaler"]["_growth_tracker"] == 1

    restored = _scaled(init_scale=1.0, growth_interval=2000)  # different settings: all overwritten by the state
    restored.load_state_dict(state)
    assert restored.state_dict() == prec.state_dict()
    model2 = copy.deepcopy(model)
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    a = _train(prec, model, opt, x, range(3, 8), poison={5})
    b = _train(restored, model2, opt2, x, range(3, 8), poison={5})
    assert a == b and prec.scaler.get_scale() == restored.scaler.get_scale()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), model2.parameters()))


def test_a_checkpoint_of_another_precision_is_refused():
    with pytest.raises(CheckpointError, match=r"trained with precision='16-mixed'; resume it with that precision, not '32'"):
        make_precision("32", "cpu").load_state_dict({"precision": "16-mixed", "scaler": {"scale": 2.0}}, source="ck")
    with pytest.raises(CheckpointError, match="malformed GradScaler state"):
        _scaled().load_state_dict({"precision": "16-mixed", "scaler": {"scale": 2.0}})
    with pytest.raises(CheckpointError, match="no valid precision state"):
        _scaled().load_state_dict({"scaler": None})
