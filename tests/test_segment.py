"""U-Net segmentation: data pairing and errors, padding, augmentation alignment, metrics and
losses by hand, tiled prediction, training, resume and the `aekit segment` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from aekit.errors import ConfigError, DataError, ShapeError
from aekit.tasks.segmentation import (
    Augment, SegmentationUNet, SegmentTrainer, SegmentConfig, cells_set, evaluate_model, load_pairs, load_segmenter,
    make_cells, pad_to_multiple, predict_logits, random_crops, save_segmenter, segmentation_scores, soft_dice_loss,
    write_cells,
)
from aekit.tasks.segmentation.augment import elastic_grid, warp
from aekit.tasks.segmentation.losses import segmentation_loss
from aekit.tasks.segmentation.tiles import tile_starts

from cli_helpers import cli


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)


def _pair_dirs(tmp_path, n=3, h=10, w=12, mask_values=(0, 255)):
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        _save(img_dir / f"im{i}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        _save(mask_dir / f"im{i}.png", rng.choice(np.array(mask_values, dtype=np.uint8), (h, w)))
    return img_dir, mask_dir


# ---------------------------------------------------------------------- data
def test_folder_pairs_binary_png_and_tiff(tmp_path):
    img_dir, mask_dir = _pair_dirs(tmp_path)
    # one pair stored as TIFF, a 16-bit image: scaled by 65535, matched by stem
    (img_dir / "im2.png").unlink()
    (mask_dir / "im2.png").unlink()
    img16 = np.full((10, 12), 65535, np.uint16)
    img16[0, 0] = 0
    Image.fromarray(img16).save(img_dir / "im2.tif")
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:7] = 255
    Image.fromarray(m).save(mask_dir / "im2.tiff")
    ds = load_pairs(img_dir, mask_dir)
    assert ds.names == ["im0.png", "im1.png", "im2.tif"]
    assert ds.classes == 2 and ds.encoding == "0/255" and ds.channels == 1
    raw0 = np.asarray(Image.open(img_dir / "im0.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(ds.images[0][0], raw0, atol=1e-7)
    assert ds.images[2][0, 0, 0] == 0 and ds.images[2][0, 1, 1] == 1
    assert set(np.unique(ds.masks[0])) <= {0, 1}
    assert ds.masks[2].sum() == 12 and ds.masks[2][2:5, 3:7].all()


def test_multiclass_masks_palette_and_suffix(tmp_path):
    img_dir, mask_dir = tmp_path / "images", tmp_path / "masks"
    img_dir.mkdir()
    mask_dir.mkdir()
    _save(img_dir / "a.png", np.zeros((6, 6, 3), np.uint8))  # RGB image -> 3 channels
    m = np.zeros((6, 6), np.uint8)
    m[0, 0], m[1, 1] = 1, 3
    pal = Image.fromarray(m, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.save(mask_dir / "a_mask.png")
    pal.save(img_dir / "b.png")  # the same palette file as an image: its colors, not its indices
    pal.save(mask_dir / "b_mask.png")
    ds = load_pairs(img_dir, mask_dir, mask_suffix="_mask")
    assert ds.classes == 4 and ds.encoding == "indices" and ds.channels == 3
    assert ds.masks[0][1, 1] == 3 and ds.masks[0][0, 0] == 1
    assert ds.images[1][:, 1, 1].tolist() == [0, 0, 1] and ds.images[1][:, 0, 0].tolist() == [1, 0, 0]
    with pytest.raises(DataError, match="classes=3 allows 0..2"):
        load_pairs(img_dir, mask_dir, mask_suffix="_mask", classes=3)


def test_zero_one_masks_keep_encoding(tmp_path):
    img_dir, mask_dir = _pair_dirs(tmp_path, mask_values=(0, 1))
    ds = load_pairs(img_dir, mask_dir)
    assert ds.encoding == "0/1" and ds.classes == 2


def test_unmatched_files_are_named(tmp_path):
    img_dir, mask_dir = _pair_dirs(tmp_path)
    (mask_dir / "im1.png").rename(mask_dir / "other.png")
    with pytest.raises(DataError) as exc:
        load_pairs(img_dir, mask_dir)
    assert "im1.png" in str(exc.value) and "other.png" in str(exc.value) and "stem" in str(exc.value)


def test_missized_pair_empty_folder_unreadable_file_gray_masks(tmp_path):
    img_dir, mask_dir = _pair_dirs(tmp_path)
    _save(mask_dir / "im1.png", np.zeros((10, 11), np.uint8))
    with pytest.raises(DataError, match=r"mis-sized pair: image 'im1.png' is 12x10 \(WxH\) but mask 'im1.png' is 11x10"):
        load_pairs(img_dir, mask_dir)
    _save(mask_dir / "im1.png", np.zeros((10, 12), np.uint8))
    (img_dir / "im0.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="im0.png: could not read image"):
        load_pairs(img_dir, mask_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        load_pairs(empty, mask_dir)
    with pytest.raises(DataError, match="does not exist"):
        load_pairs(tmp_path / "nope", mask_dir)
    (tmp_path / "gray").mkdir()
    img2, mask2 = _pair_dirs(tmp_path / "gray", mask_values=(0, 128, 255))
    with pytest.raises(DataError, match="gray levels"):
        load_pairs(img2, mask2)


def test_arrays_npz_and_npy(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 9, 1), dtype=np.uint8)  # (N, H, W, C)
    y = np.zeros((4, 8, 9), np.int64)
    y[:, 2:4, 2:5] = 2
    np.savez(tmp_path / "d.npz", images=x, masks=y)
    ds = load_pairs(tmp_path / "d.npz")
    assert len(ds) == 4 and ds.channels == 1 and ds.classes == 3 and ds.images[0].shape == (1, 8, 9)
    np.testing.assert_allclose(ds.images[1][0], x[1, :, :, 0] / 255, atol=1e-7)
    np.save(tmp_path / "x.npy", x[..., 0])
    np.save(tmp_path / "y.npy", y[:3])
    with pytest.raises(DataError, match="do not pair up"):
        load_pairs(tmp_path / "x.npy", tmp_path / "y.npy")
    train, val = ds.split(0.25, seed=0)
    assert len(train) == 3 and len(val) == 1 and not set(train.names) & set(val.names)


def test_procedural_set_seeded_with_masks(tmp_path):
    x1, m1 = make_cells(3, size=40, classes=3, seed=5)
    x2, m2 = make_cells(3, size=40, classes=3, seed=5)
    assert x1.shape == (3, 1, 40, 40) and m1.shape == (3, 40, 40)
    assert np.array_equal(x1, x2) and np.array_equal(m1, m2)
    assert set(np.unique(m1)) == {0, 1, 2} and 0 <= x1.min() and x1.max() <= 1
    # objects are brighter than their surroundings on average, but the background is uneven
    assert x1[:, 0][m1 > 0].mean() > x1[:, 0][m1 == 0].mean()
    img_dir, mask_dir = write_cells(tmp_path / "c", 2, size=24, classes=2, seed=1)
    ds = load_pairs(img_dir, mask_dir)
    assert ds.classes == 2 and ds.encoding == "0/255" and len(ds) == 2


# ---------------------------------------------------------------------- model
@pytest.mark.parametrize("hw", [(1, 1), (7, 13), (33, 17), (16, 16)])
def test_unet_any_size_and_classes(hw):
    for classes, channels in ((2, 1), (4, 4)):
        net = SegmentationUNet(in_channels=2, classes=classes, depth=3, width=2)
        out = net(torch.rand(2, 2, *hw))
        assert out.shape == (2, channels, *hw)


def test_pad_to_multiple_keeps_the_image_in_the_corner():
    x = torch.rand(1, 1, 9, 6)
    p = pad_to_multiple(x, 8)
    assert p.shape == (1, 1, 16, 8)
    assert torch.equal(p[..., :9, :6], x)
    assert torch.equal(p[..., 9, :6], x[..., 7, :6])  # reflection about the last row
    assert pad_to_multiple(torch.rand(1, 1, 2, 3), 8).shape == (1, 1, 8, 8)  # too small to reflect: replicate


def test_unet_errors_and_save_load(tmp_path):
    with pytest.raises(ConfigError, match="background"):
        SegmentationUNet(classes=1)
    with pytest.raises(ConfigError, match="norm"):
        SegmentationUNet(norm="layer")
    net = SegmentationUNet(in_channels=1, classes=3, depth=2, width=3).eval()
    with pytest.raises(ShapeError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(1, 3, 8, 8))
    save_segmenter(net, tmp_path / "m")
    again = load_segmenter(tmp_path / "m")
    x = torch.rand(2, 1, 11, 10)
    assert torch.equal(net(x), again(x)) and again.config == net.config


# ---------------------------------------------------------------------- augmentation
def _blob_masks(b=4, size=24, classes=3):
    _, m = make_cells(b, size=size, classes=classes, seed=3)
    return torch.as_tensor(m)


def test_flips_and_rotations_keep_image_and_mask_aligned():
    y = _blob_masks()
    x = torch.stack([y.float(), 2 * y.float()], dim=1)  # (B, 2, H, W): the mask as a 2-channel image
    gen = torch.Generator().manual_seed(1)
    xa, ya = Augment(flip=True, rotate=True, elastic=False)(x, y, gen)
    assert torch.equal(xa[:, 0], ya.float()) and torch.equal(xa[:, 1], 2 * ya.float())
    assert not torch.equal(ya, y)  # something did change


def test_elastic_deformation_keeps_image_and_mask_aligned():
    y = _blob_masks(b=6)
    x = y.float()[:, None]
    gen = torch.Generator().manual_seed(2)
    xa, ya = Augment(flip=False, rotate=False, elastic=True, elastic_std=3.0, p_elastic=1.0)(x, y, gen)
    assert ya.dtype == torch.int64 and set(ya.unique().tolist()) <= {0, 1, 2}  # nearest: labels never blended
    changed = (ya != y).float().mean()
    agree = (xa[:, 0].round().long() == ya).float().mean()
    assert changed > 0.01 and agree > 0.97  # the image follows the mask; bilinear vs nearest differ on edges only
    # zero displacement is the identity: the grid's pixel-centre convention is exact
    grid = elastic_grid(2, 7, 9, std=0.0, grid=3, gen=gen)
    xi = torch.rand(2, 1, 7, 9)
    yi = torch.randint(0, 3, (2, 7, 9))
    xw, yw = warp(xi, yi, grid)
    assert torch.allclose(xw, xi, atol=1e-5) and torch.equal(yw, yi)


def test_random_crops_cut_image_and_mask_alike():
    y = _blob_masks(b=3, size=20)
    x = y.float()[:, None] * 0.5
    gen = torch.Generator().manual_seed(0)
    xc, yc = random_crops(list(x), list(y), [0, 2, 1], 8, gen)
    assert xc.shape == (3, 1, 8, 8) and yc.shape == (3, 8, 8)
    assert torch.equal(xc[:, 0] * 2, yc.float())


# ---------------------------------------------------------------------- metrics
def test_dice_iou_pixel_error_by_hand():
    pred = torch.tensor([[1, 1, 0], [0, 1, 0]])
    true = torch.tensor([[1, 0, 0], [0, 1, 1]])
    s = segmentation_scores(pred, true)
    # TP = 2, |P| = 3, |T| = 3, union = 4, 2 wrong pixels of 6
    assert s["dice"] == pytest.approx(4 / 6) and s["iou"] == pytest.approx(2 / 4)
    assert s["pixel_error"] == pytest.approx(2 / 6)
    empty = segmentation_scores(torch.zeros(2, 2), torch.zeros(2, 2))
    assert empty["dice"] == 1 and empty["iou"] == 1 and empty["pixel_error"] == 0


def test_multiclass_scores_by_hand_and_pooling():
    true = torch.tensor([[0, 1, 1, 2], [2, 2, 0, 0]])
    pred = torch.tensor([[0, 1, 2, 2], [2, 0, 0, 1]])
    s = segmentation_scores(pred, true, classes=3)
    # class 1: TP 1, |P| 2, |T| 2 -> dice 1/2, iou 1/3; class 2: TP 2, |P| 3, |T| 3 -> dice 2/3, iou 2/4
    assert s["per_class"][1] == pytest.approx({"dice": 0.5, "iou": 1 / 3})
    assert s["per_class"][2] == pytest.approx({"dice": 2 / 3, "iou": 0.5})
    assert s["dice"] == pytest.approx((0.5 + 2 / 3) / 2) and s["iou"] == pytest.approx((1 / 3 + 0.5) / 2)
    assert s["pixel_error"] == pytest.approx(3 / 8)
    pooled = segmentation_scores([pred[:1], pred[1:]], [true[:1], true[1:]], classes=3)
    assert pooled["dice"] == pytest.approx(s["dice"])


# ---------------------------------------------------------------------- losses
def test_soft_dice_value_by_hand():
    target = torch.tensor([[[1, 1, 0, 0, 0]]])  # (1, 1, 5): k = 2 of n = 5
    logits = torch.zeros(1, 1, 1, 5)  # p = 0.5 everywhere
    expected = 1 - (2 * 0.5 * 2 + 1) / (0.5 * 5 + 2 + 1)
    assert float(soft_dice_loss(logits, target)) == pytest.approx(expected)
    perfect = torch.full((1, 3, 2, 2), -30.0)
    t = torch.tensor([[[0, 1], [2, 2]]])
    perfect.scatter_(1, t[:, None], 30.0)
    assert float(soft_dice_loss(perfect, t)) == pytest.approx(0, abs=1e-6)
    loss, terms = segmentation_loss(perfect, t)
    assert set(terms) == {"ce", "dice"} and float(loss) < 1e-6


def test_soft_dice_gradient_matches_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(2, 3, 4) > 0.5).long()
    soft_dice_loss(logits, target).backward()
    p, t = torch.sigmoid(logits.detach()[:, 0]), target.double()
    inter, s = (p * t).sum(), p.sum() + t.sum()
    # L = 1 - (2I + 1) / (S + 1): dL/dp_i = -(2 t_i (S + 1) - (2I + 1)) / (S + 1)^2, dp/dz = p (1 - p)
    grad = -(2 * t * (s + 1) - (2 * inter + 1)) / (s + 1) ** 2 * p * (1 - p)
    assert torch.allclose(logits.grad[:, 0], grad, atol=1e-12)
    assert (logits.grad[:, 0][target == 1] < 0).all()  # gradient descent raises foreground logits


# ---------------------------------------------------------------------- tiling
def test_tile_starts_cover_sizes_not_divisible():
    assert tile_starts(50, 16, 8) == [0, 8, 16, 24, 32, 34]
    assert tile_starts(10, 16, 8) == [0]


def test_tiled_prediction_is_exact_for_a_small_receptive_field():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 3, padding=1)).eval()  # reach: 2 px
    image = torch.rand(2, 50, 37)  # neither side divisible by the tile
    with torch.no_grad():
        whole = net(image[None])[0]
    tiled = predict_logits(net, image, tile=16, overlap=12)  # zero-weight margin 3 >= the reach
    assert tiled.shape == whole.shape
    assert torch.allclose(tiled, whole, atol=1e-5)


def test_tiled_unet_prediction_is_close_to_whole_image():
    torch.manual_seed(0)
    net = SegmentationUNet(in_channels=1, classes=2, depth=2, width=4).eval()
    image = torch.rand(1, 70, 45)
    with torch.no_grad():
        whole = net(image[None])[0]
    assert torch.equal(predict_logits(net, image, tile=70), whole)  # fits in one tile: the same call
    tiled = predict_logits(net, image, tile=32, overlap=24)
    assert tiled.shape == whole.shape
    rel = (tiled - whole).abs().mean() / whole.std()
    assert rel < 0.05, rel


# ---------------------------------------------------------------------- training
def test_training_improves_dice_and_resume_matches(tmp_path):
    train, val = cells_set(20, size=32, seed=1), cells_set(6, size=32, seed=2)
    torch.manual_seed(0)
    net = SegmentationUNet(depth=2, width=6)
    before = evaluate_model(net, val)["dice"]
    cfg = dict(epochs=10, batch_size=4, crop=32, lr=2e-2, augment=["flip", "rotate"])
    result = SegmentTrainer(net, SegmentConfig(**cfg)).fit(train, val)
    after = evaluate_model(net, val)["dice"]
    assert after > before + 0.2 and after > 0.7, (before, after, [h["val_dice"] for h in result.history])
    # resume: 1 epoch + 1 more from the checkpoint == 2 epochs straight
    small, cfg2 = train.subset(range(6)), dict(cfg, epochs=2, batch_size=3, crop=24)
    torch.manual_seed(0)
    a = SegmentationUNet(depth=1, width=3)
    b = SegmentationUNet(depth=1, width=3)
    b.load_state_dict(a.state_dict())
    SegmentTrainer(a, SegmentConfig(**cfg2)).fit(small)

    def interrupt(record, trainer):  # stop after the first epoch, as Ctrl-C would (its checkpoint is written)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SegmentTrainer(b, SegmentConfig(**cfg2), out_dir=tmp_path / "r", callbacks=[interrupt]).fit(small)
    c = SegmentationUNet(depth=1, width=3)
    trainer = SegmentTrainer(c, SegmentConfig(**cfg2), out_dir=tmp_path / "r")
    trainer.fit(small, resume=True)
    assert trainer.epoch == 2 and len(trainer.history) == 2
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.allclose(va.float(), vc.float(), atol=1e-6), k


def test_resume_skips_a_corrupted_newest_checkpoint(tmp_path):
    small = cells_set(4, size=24, seed=1)
    cfg = SegmentConfig(epochs=2, batch_size=2, crop=24, keep_checkpoints=3)
    torch.manual_seed(0)
    SegmentTrainer(SegmentationUNet(depth=1, width=3), cfg, out_dir=tmp_path / "r").fit(small)
    newest = tmp_path / "r" / "checkpoints" / "epoch-00002" / "state.safetensors"
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the optimizer state: its checksum no longer matches
    newest.write_bytes(bytes(data))
    trainer = SegmentTrainer(SegmentationUNet(depth=1, width=3), cfg, out_dir=tmp_path / "r")
    assert trainer.load_checkpoint().name == "epoch-00001" and trainer.epoch == 1


# ---------------------------------------------------------------------- commands
def test_cli_end_to_end(tmp_path, no_fsync):
    data = tmp_path / "data"
    code, out, err = cli("segment", "make-data", "--out", data, "-n", "10", "--size", "24", "--seed", "3")
    assert code == 0, err
    run = tmp_path / "run"
    code, out, err = cli("segment", "train", "--images", data / "images", "--masks", data / "masks", "--out", run,
                         "--epochs", "2", "--depth", "2", "--width", "4", "--crop", "16", "--augment", "flip,elastic",
                         "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["epochs"] == 2 and summary["val_pairs"] == 1
    assert (run / "model.safetensors").is_file() and (run / "history.json").is_file()
    pred = tmp_path / "pred"
    code, out, err = cli("segment", "predict", run, "--images", data / "images", "--out", pred, "--tile", "16")
    assert code == 0, err
    names = sorted(p.name for p in (data / "images").iterdir())
    assert sorted(p.name for p in pred.iterdir()) == names
    written = np.asarray(Image.open(pred / names[0]))
    assert written.shape == (24, 24) and set(np.unique(written)) <= {0, 255}
    code, out, err = cli("segment", "evaluate", run, "--images", data / "images", "--masks", data / "masks", "--json")
    assert code == 0, err
    scores = json.loads(out)
    assert {"dice", "iou", "pixel_error"} <= set(scores) and scores["images"] == 10
    # the predicted masks, read back as masks, score the same as the model
    code, out, err = cli("segment", "evaluate", run, "--images", data / "images", "--masks", pred, "--json",
                         "--tile", "16")
    assert code == 0, err
    assert json.loads(out)["dice"] == 1.0 and json.loads(out)["pixel_error"] == 0.0
    # errors: one line, exit code 1 (user errors) or 2 (usage)
    code, out, err = cli("segment", "evaluate", tmp_path / "missing", "--images", data / "images", "--masks", pred)
    assert code == 1 and "does not exist" in err
    code, out, err = cli("segment", "train", "--images", data / "images", "--masks", tmp_path / "nomasks",
                         "--out", tmp_path / "r2")
    assert code == 1 and "nomasks" in err
    code, out, err = cli("segment", "train", "--images", data / "images", "--masks", data / "masks", "--out", run,
                         "--epcohs", "1")
    assert code == 2 and "Did you mean" in err
    code, out, err = cli("segment", "train", "--images", data / "images", "--masks", data / "masks", "--out", run)
    assert code == 2 and "--resume" in err
    code, out, err = cli("segment", "train", "--images", data / "images", "--masks", data / "masks", "--out", run,
                         "--augment", "flips")
    assert code == 2 and "flip" in err
