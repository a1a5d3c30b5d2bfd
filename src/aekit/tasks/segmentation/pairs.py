"""Image / mask pairs for segmentation: two folders (PNG or TIFF) or arrays (.npy / .npz).

Folders: every image in IMAGES is matched with the file of the same stem in MASKS (``a.png``
with ``a.png`` or ``a.tif``; with ``mask_suffix="_mask"`` ``a.png`` with ``a_mask.png``). An
image without a mask, a mask without an image, a pair whose sizes differ, an empty folder and
an unreadable file are each a DataError that names the files.

Images: grayscale files give 1 channel, color files 3 (alpha dropped); if any image is in
color every image is read as RGB. Intensities go to [0, 1]: uint8 / 255, other non-negative
integers / 65535 (16-bit TIFF and PNG), floats already in [0, 1] kept, anything else min-max
scaled per image. Multi-page TIFFs: the first page is read. Images may differ in size from
pair to pair (training takes random crops).

Masks: {0, 255} or {0, 1} are binary (background 0, foreground 1); other integer values are
class indices 0..C-1 (a palette PNG gives its indices; a gray PNG its gray levels). The class
count is inferred (max value + 1, at least 2) unless given; values >= 64 that are not 255 are
refused as gray levels rather than class indices, and the encoding ("0/255", "0/1" or
"indices") is kept so predicted masks are written back in the same encoding.

Arrays: one .npz with images under images/x/X/data and masks under masks/mask/y/labels/
targets, or two files (.npy or .npz) given as images and masks. Images (N, H, W),
(N, C, H, W) with C in {1, 3} or (N, H, W, C); masks (N, H, W) or (N, 1, H, W).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...data.files import _check_magic, _load_npy
from ...errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy", ".npz")
IMAGE_KEYS = ("images", "image", "x", "X", "data")
MASK_KEYS = ("masks", "mask", "y", "Y", "labels", "targets", "target")
MAX_INFERRED_CLASSES = 64


@dataclass
class SegmentationSet:
    """Pairs of images (C, H, W) float32 in [0, 1] and masks (H, W) int64 in 0..classes-1."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    names: list[str]
    classes: int
    encoding: str = "0/255"            # how masks were stored: "0/255", "0/1" or "indices"
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0])

    def subset(self, indices) -> "SegmentationSet":
        idx = [int(i) for i in indices]
        return SegmentationSet([self.images[i] for i in idx], [self.masks[i] for i in idx],
                               [self.names[i] for i in idx], self.classes, self.encoding, dict(self.source))

    def split(self, val_fraction: float, *, seed: int = 0) -> tuple["SegmentationSet", "SegmentationSet | None"]:
        """(train, val) by a seeded permutation; val is None when val_fraction is 0 or only one pair exists."""
        if not 0 <= val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1); got {val_fraction!r}.")
        n = len(self)
        n_val = int(round(n * val_fraction))
        if val_fraction > 0 and n >= 2:
            n_val = min(max(n_val, 1), n - 1)
        else:
            n_val = 0
        if n_val == 0:
            return self, None
        perm = np.random.default_rng(seed).permutation(n)
        return self.subset(sorted(perm[n_val:])), self.subset(sorted(perm[:n_val]))


# ---------------------------------------------------------------------- conversions
def to_unit_float(a: np.ndarray, *, where: str) -> np.ndarray:
    """Scale an image array to float32 in [0, 1] (rules in the module docstring)."""
    if a.dtype.kind not in "biuf":
        raise DataError(f"{where}: image must hold numbers; got dtype {a.dtype}.")
    if a.dtype == np.uint8 or a.dtype == bool:
        return a.astype(np.float32) / (1.0 if a.dtype == bool else 255.0)
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise DataError(f"{where}: image has NaN or inf values.")
    lo, hi = float(a.min()), float(a.max())
    if a.dtype.kind == "f" and lo >= 0 and hi <= 1:
        return a.astype(np.float32)
    if lo >= 0 and hi <= 65535 and np.all(a == np.round(a)):
        return (a / (255.0 if hi <= 255 else 65535.0)).astype(np.float32)
    return ((a - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def mask_encoding(values: set) -> str:
    if values <= {0, 255} and 255 in values:
        return "0/255"
    if values <= {0, 1}:
        return "0/1"
    return "indices"


def masks_to_classes(masks: list[np.ndarray], names: list[str], *, classes: int | None, where: str
                     ) -> tuple[list[np.ndarray], int, str]:
    """Integer class maps (H, W) int64, the class count and the encoding found."""
    values: set = set()
    for m, name in zip(masks, names):
        if m.dtype.kind == "f":
            if not np.all(np.isfinite(m)) or not np.all(m == np.round(m)):
                raise DataError(f"{where}: mask {name!r} holds non-integer values; expected {{0, 255}}, {{0, 1}} "
                                "or class indices 0..C-1.")
        elif m.dtype.kind not in "biu":
            raise DataError(f"{where}: mask {name!r} must hold integers; got dtype {m.dtype}.")
        values |= {int(v) for v in np.unique(m)}
    if min(values) < 0:
        raise DataError(f"{where}: masks hold negative values ({min(values)}); expected 0..C-1.")
    encoding = mask_encoding(values)
    if classes is not None and (not isinstance(classes, int) or classes < 2):
        raise ConfigError(f"classes counts the background, so it must be an integer >= 2 (2 for binary); got {classes!r}.")
    if encoding == "0/255":
        out = [(m.astype(np.int64) > 0).astype(np.int64) for m in masks]
        top = 1
    else:
        out = [m.astype(np.int64) for m in masks]
        top = max(values)
        if classes is None and top >= MAX_INFERRED_CLASSES:
            raise DataError(
                f"{where}: mask values {sorted(values)[:8]}{' ...' if len(values) > 8 else ''} look like gray levels, "
                "not class indices; expected {0, 255} or {0, 1} for binary masks or 0..C-1 for C classes "
                "(pass classes / --classes if there really are that many).")
    n_classes = classes if classes is not None else max(2, top + 1)
    if top >= n_classes:
        bad = next(n for m, n in zip(out, names) if int(m.max()) >= n_classes)
        raise DataError(f"{where}: mask {bad!r} holds class {top}, but classes={n_classes} allows 0..{n_classes - 1}.")
    return out, n_classes, encoding


# ---------------------------------------------------------------------- folders
def _files(folder: Path, what: str) -> list[Path]:
    if not folder.exists():
        raise DataError(f"{what} folder {str(folder)!r} does not exist.")
    if not folder.is_dir():
        raise DataError(f"{what} {str(folder)!r} is not a folder; expected a folder of {'/'.join(IMAGE_SUFFIXES)} files.")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"{what} folder {str(folder)!r} is empty: expected {', '.join(IMAGE_SUFFIXES)} files; found none.")
    return files


def read_image_file(path: Path, *, mask: bool = False) -> np.ndarray:
    """The pixels of one PNG/TIFF file as stored: (H, W) or (H, W, C); first page of a multi-page TIFF.

    A palette ("P") file gives its indices when read as a mask (a class map) and its colors
    when read as an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.seek(0)
            mode = img.mode
            if mode in ("P", "PA"):
                return np.array(img.convert("P") if mode == "PA" else img) if mask else np.array(img.convert("RGB"))
            if mode in ("RGBA", "LA"):
                img = img.convert("RGB" if mode == "RGBA" else "L")
            elif mode in ("CMYK", "YCbCr", "HSV", "LAB"):
                img = img.convert("RGB")
            elif mode == "1":
                img = img.convert("L")
            return np.array(img)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: could not read image: {exc}.") from None


def _as_chw(a: np.ndarray, path) -> np.ndarray:
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return np.transpose(a[:, :, :3], (2, 0, 1))
    raise DataError(f"{path}: unsupported image layout with shape {a.shape}; expected gray or RGB.")


def _mask_2d(a: np.ndarray, path) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if np.all(a[:, :, 0:1] == a[:, :, :3]):
            return a[:, :, 0]
        raise DataError(f"{path}: color masks are not supported; save class indices as a grayscale or palette "
                        "image (0/255 or 0/1 for binary, 0..C-1 for C classes).")
    if a.ndim != 2:
        raise DataError(f"{path}: a mask must be a 2-D image; got shape {a.shape}.")
    return a


def _pair_files(image_dir: Path, mask_dir: Path, mask_suffix: str) -> list[tuple[Path, Path]]:
    images = _files(image_dir, "images")
    masks = _files(mask_dir, "masks")
    by_stem: dict[str, Path] = {}
    for m in masks:
        stem = m.stem
        if mask_suffix:
            if not stem.endswith(mask_suffix):
                raise DataError(f"mask {m.name!r} in {str(mask_dir)!r} does not end with mask_suffix {mask_suffix!r}.")
            stem = stem[: -len(mask_suffix)]
        if stem in by_stem:
            raise DataError(f"two masks for one image stem {stem!r}: {by_stem[stem].name!r} and {m.name!r}.")
        by_stem[stem] = m
    image_stems: dict[str, Path] = {}
    for p in images:
        if p.stem in image_stems:
            raise DataError(f"two images with the stem {p.stem!r}: {image_stems[p.stem].name!r} and {p.name!r}.")
        image_stems[p.stem] = p
    no_mask = [p.name for s, p in image_stems.items() if s not in by_stem]
    no_image = [m.name for s, m in by_stem.items() if s not in image_stems]
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(f"{len(no_mask)} image(s) without a mask in {str(mask_dir)!r}: {', '.join(no_mask[:5])}"
                         + (" ..." if len(no_mask) > 5 else ""))
        if no_image:
            parts.append(f"{len(no_image)} mask(s) without an image in {str(image_dir)!r}: {', '.join(no_image[:5])}"
                         + (" ..." if len(no_image) > 5 else ""))
        hint = f" (masks are matched by file stem{' + ' + repr(mask_suffix) if mask_suffix else ''})"
        raise DataError("unmatched files: " + "; ".join(parts) + hint + ".")
    return [(image_stems[s], by_stem[s]) for s in sorted(image_stems)]


def read_folders(image_dir, mask_dir, *, classes: int | None = None, mask_suffix: str = "") -> SegmentationSet:
    """Read every image/mask pair of two folders (see module docstring)."""
    image_dir, mask_dir = Path(image_dir), Path(mask_dir)
    pairs = _pair_files(image_dir, mask_dir, mask_suffix)
    raw_images, masks, names = [], [], []
    for ip, mp in pairs:
        img = _as_chw(read_image_file(ip), ip)
        mask = _mask_2d(read_image_file(mp, mask=True), mp)
        if img.shape[1:] != mask.shape:
            raise DataError(f"mis-sized pair: image {ip.name!r} is {img.shape[2]}x{img.shape[1]} (WxH) but mask "
                            f"{mp.name!r} is {mask.shape[1]}x{mask.shape[0]}.")
        raw_images.append(img)
        masks.append(mask)
        names.append(ip.name)
    color = any(a.shape[0] == 3 for a in raw_images)
    images = []
    for a, name in zip(raw_images, names):
        a = np.repeat(a, 3, axis=0) if color and a.shape[0] == 1 else a
        images.append(np.ascontiguousarray(to_unit_float(a, where=str(image_dir / name))))
    masks, n_classes, encoding = masks_to_classes(masks, names, classes=classes, where=str(mask_dir))
    return SegmentationSet(images, masks, names, n_classes, encoding,
                           {"images": str(image_dir), "masks": str(mask_dir), "mask_suffix": mask_suffix})


# ---------------------------------------------------------------------- arrays
def _load_array(path: Path, keys: tuple[str, ...], what: str, *, required: bool = True) -> np.ndarray | None:
    if not path.is_file():
        raise DataError(f"{what} file {str(path)!r} does not exist.")
    if path.suffix.lower() == ".npy":
        return _load_npy(path)
    if path.suffix.lower() != ".npz":
        raise DataError(f"{path}: unknown array file extension {path.suffix!r}; expected .npy or .npz.")
    _check_magic(path, (b"PK\x03\x04", b"PK\x05\x06"), ".npz (zip)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = list(npz.files)
            key = next((k for k in keys if k in files), None)
            if key is None and len(files) == 1:
                key = files[0]
            if key is None:
                if not required:
                    return None
                raise DataError(f"{path}: no {what} array; expected a key among {', '.join(map(repr, keys))}; "
                                f"got {', '.join(map(repr, files)) or 'no arrays'}.")
            return npz[key]
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: could not read .npz file: {exc}.") from None


def _images_nchw(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return np.transpose(x, (0, 3, 1, 2))
    raise DataError(f"{where}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C) with C in {{1, 3}}; "
                    f"got shape {x.shape}.")


def read_arrays(images, masks=None, *, classes: int | None = None) -> SegmentationSet:
    """Pairs from arrays: one .npz holding both, or an images file and a masks file (.npy/.npz)."""
    images = Path(images)
    if masks is None:
        x = _load_array(images, IMAGE_KEYS, "images")
        if images.suffix.lower() != ".npz":
            raise DataError(f"{images}: a .npy file holds only images; pass the masks file too.")
        y = _load_array(images, MASK_KEYS, "masks")
        mask_src = str(images)
    else:
        x = _load_array(images, IMAGE_KEYS, "images")
        y = _load_array(Path(masks), MASK_KEYS, "masks")
        mask_src = str(masks)
    x = _images_nchw(x, str(images))
    if y.ndim == 4 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 3:
        raise DataError(f"{mask_src}: masks must be (N, H, W) or (N, 1, H, W); got shape {y.shape}.")
    if x.shape[0] != y.shape[0] or x.shape[2:] != y.shape[1:]:
        raise DataError(f"images {tuple(x.shape)} and masks {tuple(y.shape)} do not pair up: expected the same N, H and W.")
    if x.shape[0] == 0:
        raise DataError(f"{images}: empty data: no images.")
    names = [f"{i:05d}.png" for i in range(x.shape[0])]
    imgs = [np.ascontiguousarray(to_unit_float(a, where=f"{images}[{i}]")) for i, a in enumerate(x)]
    ms, n_classes, encoding = masks_to_classes(list(y), names, classes=classes, where=mask_src)
    return SegmentationSet(imgs, ms, names, n_classes, encoding, {"images": str(images), "masks": mask_src})


def load_pairs(images, masks=None, *, classes: int | None = None, mask_suffix: str = "") -> SegmentationSet:
    """Folders (images and masks) or arrays (.npy/.npz); see the module docstring."""
    path = Path(images)
    if path.suffix.lower() in ARRAY_SUFFIXES and not path.is_dir():
        return read_arrays(path, masks, classes=classes)
    if masks is None:
        raise DataError(f"masks are required with an images folder ({str(path)!r}): pass the masks folder.")
    return read_folders(path, masks, classes=classes, mask_suffix=mask_suffix)


def read_images(image_dir) -> tuple[list[np.ndarray], list[str]]:
    """Images alone (for prediction): ([(C, H, W) float32], file names), in sorted name order."""
    image_dir = Path(image_dir)
    files = _files(image_dir, "images")
    raw = [_as_chw(read_image_file(p), p) for p in files]
    color = any(a.shape[0] == 3 for a in raw)
    out = [to_unit_float(np.repeat(a, 3, axis=0) if color and a.shape[0] == 1 else a, where=str(p))
           for a, p in zip(raw, files)]
    return out, [p.name for p in files]
