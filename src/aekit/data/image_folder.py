"""Reader for a directory of PNG / JPEG images (Pillow).

- Images directly in the folder: no labels. Images in class subfolders (folder/cat/1.png, ...):
  labels are the sorted subfolder names mapped to 0, 1, ... . A mix of both is refused.
- All images grayscale ("1", "L", "LA") -> 1 channel, else RGB (alpha dropped) -> 3 channels.
- `image_size` (H, W) resizes every image (bilinear, antialiased); without it all images must
  have the same size, else a DataError names two files and their sizes.
- Files are read in sorted path order; hidden files (".name") are skipped.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from aekit.errors import DataError
from aekit.memory_budget import array_cost, check_budget

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA")
MAX_PIXELS = 2**26  # per image (8192 x 8192): far above any autoencoder input, far below a bomb


def _image_files(root: Path) -> list[Path]:
    files = [
        p for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    for p in files:  # a FIFO or a link to a device named .png would block or never end
        if not p.is_file():
            raise DataError(f"{p}: not a regular file (a device, FIFO, socket or broken link); "
                            "aekit reads images from regular files only.")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:  # from memory: BytesIO.read(n) returns what exists; a file's read(n) first allocates n (damaged chunk sizes)
        img = Image.open(io.BytesIO(path.read_bytes()))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: could not read image: {exc}.") from exc
    width, height = img.size
    if width * height > MAX_PIXELS:  # refused before decoding allocates width x height x channels bytes
        img.close()
        raise DataError(f"{path}: the image declares {width}x{height} pixels; refusing more than {MAX_PIXELS} "
                        "(a corrupt header or a decompression bomb).")
    return img


def warn_if_stretched(source: str, sizes: list[tuple[int, int]], image_size: tuple[int, int]) -> int:
    """Warn when resizing to image_size (H, W) changes the aspect ratio of some images (by more than 1 %);
    returns how many are stretched."""
    import warnings

    from aekit.errors import AekitWarning

    target = image_size[1] / image_size[0]  # W / H
    stretched = [(h, w) for h, w in sizes if abs((w / h) / target - 1.0) > 0.01]
    if stretched:
        h, w = stretched[0]
        warnings.warn(AekitWarning(
            f"{source}: {len(stretched)} of {len(sizes)} images change aspect ratio when resized to "
            f"{image_size[0]}x{image_size[1]} (HxW), e.g. {h}x{w}: they are stretched, not cropped; crop or pad "
            "them to the target's proportions first to keep shapes undistorted."), stacklevel=3)
    return len(stretched)


def read_image_folder(
    root: str | Path, *, image_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read every image under root into (x (N, C, H, W) uint8, labels (N,) or None, classes)."""
    from PIL import Image

    root = Path(root)
    files = _image_files(root)
    if not files:
        raise DataError(
            f"{root}: empty data: expected image files ({', '.join(IMAGE_EXTENSIONS)}) in the "
            "folder or in class subfolders; found none."
        )
    depths = {len(p.relative_to(root).parts) > 1 for p in files}
    if len(depths) == 2:
        top = next(p for p in files if len(p.relative_to(root).parts) == 1)
        sub = next(p for p in files if len(p.relative_to(root).parts) > 1)
        raise DataError(
            f"{root}: images are both directly in the folder ({top.name}) and in subfolders "
            f"({sub.relative_to(root).as_posix()}); expected one layout: all in the folder "
            "(no labels) or all in class subfolders."
        )
    headers = []                                     # (path, (W, H), mode)
    for p in files:
        with _open(p) as img:
            headers.append((p, img.size, img.mode))
    gray = all(mode in GRAY_MODES for _, _, mode in headers)
    channels = 1 if gray else 3
    values = sum(w * h for _, (w, h), _ in headers) * channels  # decoded, from the headers alone
    if image_size is not None:
        values += len(headers) * channels * image_size[0] * image_size[1]
    check_budget(array_cost(values, 2), what=f"{root}: decoding {len(headers)} image(s) of "
                 f"{sum(w * h for _, (w, h), _ in headers)} pixels in all",
                 hint="pass image_size (--image-size) to downscale, or use fewer images")
    if image_size is None:
        first_path, first_size, _ = headers[0]
        for p, size, _ in headers[1:]:
            if size != first_size:
                raise DataError(
                    f"{root}: images of mixed sizes: {first_path.name} is {first_size[0]}x"
                    f"{first_size[1]} (WxH) but {p.relative_to(root).as_posix()} is {size[0]}x"
                    f"{size[1]}; pass image_size (--image-size) to resize them all."
                )
    if image_size is not None:
        warn_if_stretched(str(root), [(h, w) for _, (w, h), _ in headers], image_size)
    arrays = []
    for p in files:
        with _open(p) as img:
            try:
                img = img.convert("L" if gray else "RGB")
                if image_size is not None and img.size != (image_size[1], image_size[0]):
                    img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
                a = np.asarray(img, dtype=np.uint8)
            except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error, ...
                raise DataError(f"{p}: could not decode image ({type(exc).__name__}: {exc}).") from exc
        arrays.append(a[None] if gray else np.transpose(a, (2, 0, 1)))   # (C, H, W)
    x = np.stack(arrays)                                                   # (N, C, H, W)
    labels = classes = None
    if depths == {True}:
        names = [p.relative_to(root).parts[0] for p in files]
        classes = sorted(set(names))
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.array([lookup[n] for n in names], dtype=np.int64)
    return x, labels, classes
