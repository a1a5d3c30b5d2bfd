"""Subnormals flushed to zero while training on the CPU (aekit.training.denormals)."""

import torch

import aekit
from aekit.training.denormals import flush_is_on, flushed_denormals
from aekit.training.trainer import TrainConfig, Trainer


def subnormal_products(n: int = 1 << 20) -> torch.Tensor:
    """(n,) products in the float32 subnormal range (~1e-40): exactly 0 where the thread flushes."""
    a = torch.full((n,), 1e-30)
    return a * torch.full((n,), 1e-10)


def test_off_by_default_on_inside_the_block_and_restored():
    assert not flush_is_on()
    assert bool((subnormal_products(8) > 0).all())  # IEEE subnormals: 1e-40 is representable
    with flushed_denormals() as supported:
        if supported:
            assert flush_is_on()
            assert bool((subnormal_products(8) == 0).all())
    assert not flush_is_on()
    with flushed_denormals(enabled=False):
        assert not flush_is_on()


def test_every_thread_of_the_team_flushes():
    """A 2-thread elementwise product splits the rows between the caller and a worker: both must flush."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert bool((subnormal_products() > 0).all())
        with flushed_denormals() as supported:
            if supported:
                assert bool((subnormal_products() == 0).all())  # the worker's half too
        assert bool((subnormal_products() > 0).all())  # and both restored
    finally:
        torch.set_num_threads(threads)


def test_fit_trains_with_subnormals_flushed_and_restores_the_mode():
    model = aekit.build("ae", input_shape=(6,), hidden=[5], latent_dim=2, seed=0)
    seen = []
    Trainer(model, TrainConfig(epochs=1, batch_size=8, progress=False, device="cpu"),
            callbacks=[lambda record, trainer: seen.append(flush_is_on())]).fit(torch.rand(400, 6))
    supported = torch.set_flush_denormal(False)  # False where the CPU has no such mode (nothing was flushed)
    assert seen == [supported]
    assert not flush_is_on()
