"""What a feature browser shows for each latent: its firing rate and the inputs that activate it most.

Bricken et al. 2023 ("Towards Monosemanticity") interpret a dictionary feature by its activation
density and the dataset examples on which it activates most; Neuronpedia and SAELens' dashboards
show the same. `TopActivations` keeps, streaming over any number of rows and in O(m k) memory,
each latent's k largest activations and the store rows they came from; `feature_summary` runs an
SAE's encoder over a store and returns them with the firing rates; `row_origin` maps a store row
back to (input number, position) with the positions per input that capture records.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...errors import ConfigError, DataError
from .metrics import FiringTracker


class TopActivations:
    """Each of m latents' k largest positive activations seen so far, with their row numbers.

    update(codes) with (N, m) codes of consecutive rows (row numbers continue from the rows seen
    before, or start at first_row). `values` (m, k) descending and `rows` (m, k) int64, -1 (and
    value 0) where a latent fired on fewer than k rows; equal values keep the earlier row."""

    def __init__(self, n_latents: int, *, k: int):
        for name, value in (("n_latents", n_latents), ("k", k)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}.")
        self.n_latents, self.k, self.seen = n_latents, k, 0
        self.values = torch.zeros(n_latents, k)  # (m, k)
        self.rows = torch.full((n_latents, k), -1, dtype=torch.long)  # (m, k)

    def update(self, codes: torch.Tensor, *, first_row: int | None = None) -> None:
        if codes.dim() != 2 or codes.shape[1] != self.n_latents:
            raise DataError(f"codes must have shape (N, {self.n_latents}); got {tuple(codes.shape)}.")
        n = codes.shape[0]
        if n == 0:
            return
        start = self.seen if first_row is None else int(first_row)
        codes = codes.detach().float()
        # the batch's own top k per latent first: memory O(m k), not O(m N)
        vals, idx = codes.topk(min(self.k, n), dim=0)  # (k', m)
        cand_vals = torch.cat([self.values, vals.T], dim=1)  # (m, k + k'), earlier rows first
        cand_rows = torch.cat([self.rows, idx.T + start], dim=1)
        cand_vals = torch.where(cand_vals > 0, cand_vals, torch.zeros_like(cand_vals))  # only firings count
        cand_rows = torch.where(cand_vals > 0, cand_rows, torch.full_like(cand_rows, -1))
        order = torch.sort(cand_vals, dim=1, descending=True, stable=True).indices[:, :self.k]  # ties: earlier first
        self.values, self.rows = cand_vals.gather(1, order), cand_rows.gather(1, order)
        self.seen = max(self.seen, start + n)


def feature_summary(store, *, encode: Callable[[torch.Tensor], torch.Tensor], k: int = 10, batch_size: int = 4096,
                    max_rows: int | None = None) -> dict:
    """{'firing_rate' (m,), 'top_values' (m, k), 'top_rows' (m, k), 'rows'} of encode over a store's rows, in order."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}.")
    n = len(store) if max_rows is None else min(int(max_rows), len(store))
    if n < 1:
        raise DataError("no rows to summarise (the store is empty or max_rows < 1).")
    top = firing = None
    with torch.no_grad():
        for start in range(0, n, batch_size):
            codes = encode(torch.from_numpy(store.read(start, min(start + batch_size, n))))  # (b, m)
            if top is None:
                top, firing = TopActivations(int(codes.shape[1]), k=k), FiringTracker(int(codes.shape[1]), window=n)
            top.update(codes, first_row=start)
            firing.update(codes)
    return {"rows": n, "firing_rate": firing.firing_rate(), "top_values": top.values, "top_rows": top.rows}


def row_origin(store, row: int) -> tuple[int, int]:
    """(input number, position within it) of a store row, from the positions per input capture recorded."""
    positions = store.meta.get("positions")
    if not isinstance(positions, int) or positions < 1:
        raise DataError(f"the store {str(store.path)!r} records no fixed number of positions per input; "
                        "rows cannot be mapped back to inputs.")
    if not 0 <= int(row) < len(store):
        raise ConfigError(f"row must be in [0, {len(store)}); got {row!r}.")
    return divmod(int(row), positions)


__all__ = ["TopActivations", "feature_summary", "row_origin"]
