"""Saving the scikit-learn estimators without pickle: identical outputs after a round trip, damage refused."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from aekit import checkpoint as ckpt
from aekit.errors import CheckpointError, ConfigError
from aekit.tasks.estimator_folder import is_estimator_dir
from aekit.tasks.sklearn import AutoencoderOutlierDetector, AutoencoderTransformer

pytestmark = pytest.mark.usefixtures("no_fsync")


def table(n: int = 60, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * np.arange(1, d + 1) + 3.0  # (n, d), unequal scales


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short-run warnings of the tiny fit
        return AutoencoderOutlierDetector(epochs=2, n_estimators=3, contamination=0.15, random_state=0).fit(table())


def test_detector_round_trip_is_identical(fitted, tmp_path):
    X = table(40, seed=1)
    fitted.save(tmp_path / "det")
    assert is_estimator_dir(tmp_path / "det")
    assert sorted(p.name for p in (tmp_path / "det").iterdir()) == [
        "config.json", "member_0.safetensors", "member_1.safetensors", "member_2.safetensors"]
    back = AutoencoderOutlierDetector.load(tmp_path / "det")
    assert back.get_params() == fitted.get_params()
    assert np.array_equal(back.score_samples(X), fitted.score_samples(X))  # bit-identical, not close
    assert np.array_equal(back.decision_function(X), fitted.decision_function(X))
    assert np.array_equal(back.predict(X), fitted.predict(X))
    for method in ("linear", "unify"):
        assert np.array_equal(back.predict_proba(X, method=method), fitted.predict_proba(X, method=method))
    assert back.offset_ == fitted.offset_ and back.n_features_in_ == 5 and back.n_samples_fit_ == 60
    assert back.member_stats_ == fitted.member_stats_ and back.n_iter_ == fitted.n_iter_ == 2


def test_transformer_round_trip_is_identical(tmp_path):
    X = table()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = AutoencoderTransformer(epochs=2, random_state=0).fit(X)
    tr.save(tmp_path / "tr")
    back = AutoencoderTransformer.load(tmp_path / "tr")
    codes = tr.transform(X)
    assert np.array_equal(back.transform(X), codes)
    assert np.array_equal(back.inverse_transform(codes), tr.inverse_transform(codes))
    assert back.get_feature_names_out().tolist() == tr.get_feature_names_out().tolist()
    with pytest.raises(CheckpointError, match="holds a 'AutoencoderTransformer', not a AutoencoderOutlierDetector"):
        AutoencoderOutlierDetector.load(tmp_path / "tr")


def test_feature_names_are_kept(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(table(), columns=[f"c{i}" for i in range(5)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = AutoencoderOutlierDetector(epochs=1, n_estimators=1, random_state=0).fit(frame)
    det.save(tmp_path / "det")
    back = AutoencoderOutlierDetector.load(tmp_path / "det")
    assert back.feature_names_in_.tolist() == ["c0", "c1", "c2", "c3", "c4"]
    assert np.array_equal(back.score_samples(frame), det.score_samples(frame))


def test_a_corrupted_weights_file_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "det")
    path = tmp_path / "det" / "member_1.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # one weight's byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="member_1.safetensors.*corrupted"):
        AutoencoderOutlierDetector.load(tmp_path / "det")


def test_a_changed_config_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "det")
    path = tmp_path / "det" / "config.json"
    meta = json.loads(path.read_text())
    meta["state"]["offset_"] += 1.0  # an edited threshold: the checksum no longer matches
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="config.json.*checksum"):
        AutoencoderOutlierDetector.load(tmp_path / "det")
    meta["format_version"] = 99  # another format, checksum recomputed: refused by its version
    meta["config_sha256"] = ckpt.config_sha256(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="format_version 99; this aekit reads 1"):
        AutoencoderOutlierDetector.load(tmp_path / "det")
    del meta["config_sha256"]
    meta["format_version"] = 1
    path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="no checksum"):
        AutoencoderOutlierDetector.load(tmp_path / "det")


def test_a_missing_member_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "det")
    (tmp_path / "det" / "member_2.safetensors").unlink()
    with pytest.raises(CheckpointError, match="member_2.safetensors.*does not exist"):
        AutoencoderOutlierDetector.load(tmp_path / "det")


def test_unfitted_and_unsafe_saves_are_refused(fitted, tmp_path):
    with pytest.raises(ConfigError, match="not fitted yet: call fit"):
        AutoencoderOutlierDetector().save(tmp_path / "det")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match="does not hold a saved aekit estimator"):
        fitted.save(tmp_path / "data")
    with pytest.raises(CheckpointError, match="does not exist"):
        AutoencoderOutlierDetector.load(tmp_path / "nothing")


def test_saving_again_with_fewer_members_leaves_no_stale_file(fitted, tmp_path):
    fitted.save(tmp_path / "det")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = AutoencoderOutlierDetector(epochs=1, n_estimators=1, random_state=0).fit(table())
    one.save(tmp_path / "det")
    assert sorted(p.name for p in (tmp_path / "det").glob("member_*")) == ["member_0.safetensors"]
    X = table(10, seed=2)
    assert np.array_equal(AutoencoderOutlierDetector.load(tmp_path / "det").score_samples(X), one.score_samples(X))
