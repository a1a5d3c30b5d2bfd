"""Array-likes in, tensors out: what the Python API accepts where scikit-learn users pass data.

A torch.Tensor is used as is; a NumPy array (numbers or booleans) and a pandas DataFrame (numeric
columns, e.g. a table) become a float tensor. Anything else is refused with a ConfigError that names
the argument and what it got.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ConfigError


def is_array_like(x) -> bool:
    """A NumPy array or a pandas DataFrame / Series (duck-typed: pandas is not a dependency)."""
    return isinstance(x, np.ndarray) or (hasattr(x, "to_numpy") and hasattr(x, "dtypes"))


def as_float_tensor(x, *, name: str = "x", dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """x as a floating-point tensor: tensors pass through; arrays and data frames are converted to `dtype`."""
    if isinstance(x, torch.Tensor):
        return x
    if not is_array_like(x):
        raise ConfigError(f"{name} must be a torch.Tensor, a NumPy array or a pandas DataFrame; "
                          f"got {type(x).__name__}.")
    if not isinstance(x, np.ndarray):  # pandas
        dtypes = list(x.dtypes) if hasattr(x.dtypes, "__iter__") else [x.dtypes]
        if not all(isinstance(t, np.dtype) and t.kind in "biuf" for t in dtypes):  # pandas' own dtypes: text etc.
            raise ConfigError(f"{name} is a data frame with non-numeric columns; keep the numeric ones "
                              "(e.g. df.select_dtypes('number')) or encode them first.")
        x = x.to_numpy()
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"{name} must hold numbers; got a NumPy array of dtype {x.dtype}.")
    t = torch.from_numpy(np.ascontiguousarray(x)).to(dtype=dtype)
    return t if device is None else t.to(device)


__all__ = ["as_float_tensor", "is_array_like"]
