"""First-release import paths (aekit.train, aekit.sklearn, aekit.segment.tiles, ...) still work, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from aekit._compat import MOVED, new_name


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_moved_module(old):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert module.__spec__.name == MOVED[old]  # the real module keeps its own spec


def test_submodules_of_moved_packages_and_from_imports():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from aekit.segment.tiles import predict_mask
        from aekit.sklearn import AutoencoderOutlierDetector
        from aekit.train import TrainConfig
    from aekit.tasks.segmentation.tiles import predict_mask as new_predict
    from aekit.tasks.sklearn import AutoencoderOutlierDetector as new_detector
    from aekit.training.trainer import TrainConfig as new_config

    assert (predict_mask, AutoencoderOutlierDetector, TrainConfig) == (new_predict, new_detector, new_config)
    assert new_name("aekit.segment.tiles") == "aekit.tasks.segmentation.tiles"
    assert new_name("aekit.model") is None  # did not move: the ordinary import
