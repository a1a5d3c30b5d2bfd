"""aekit's data layer: named datasets, array / table / image files, splits and scaling.

    from aekit.data import load_data
    ds = load_data("digits", seed=0)        # ds.train: (N, 1, 8, 8) float32 in [0, 1]
    x, y = ds.split("test")
    raw = ds.to_raw(x)                      # back to the units of the loaded data (0..16)

See load.py for the order of operations and dataset.py for the Dataset fields.
"""

from aekit.data.binarize import BINARIZE_MODES, binarize
from aekit.data.dataset import SPLITS, Dataset
from aekit.data.files import load_array_file
from aekit.data.load import NAMED_SOURCES, list_sources, load_data

__all__ = [
    "BINARIZE_MODES",
    "NAMED_SOURCES",
    "SPLITS",
    "Dataset",
    "binarize",
    "list_sources",
    "load_array_file",
    "load_data",
]
