"""`aekit compress RUN_DIR --data SRC --out FILE [--bits B] [--method M]` and
`aekit decompress RUN_DIR FILE --out X.npy`: lossy compression with a trained autoencoder.

`aekit compress RUN_DIR --images PATH --out OUT` and `aekit decompress RUN_DIR FILE_OR_FOLDER --out PNG_OR_FOLDER`:
image files (one .aekc each, PNG out) through a rate-trained run ('entropy' / 'hyperprior' bottleneck); the
work is aekit.tasks.compression.images.

The quantizer and entropy model are fitted once per bit depth on the run's training data and
kept in RUN_DIR/compression/codec-<B>bit.safetensors (shared side information, like the weights).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..tasks.compression import METHODS
from ..errors import ConfigError
from ..tasks.compression.images import compress_images, decompress_images
from ..tasks.compression.run_files import compress_run, decompress_run
from ..npy_file import save_npy
from .options import add_data_options, out_path
from .parser import positive_int


def add_compress_parsers(sub) -> None:
    p = sub.add_parser("compress", help="compress data with a trained autoencoder into a .aekc file",
                       description="Encode, quantize (uniform, BITS per code dimension), entropy-code and write a "
                                   "versioned, checksummed container; prints bytes per image, bits per pixel, PSNR, SSIM.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train' (deterministic or VAE, no U-Net skips)")
    add_data_options(p, required=False, max_samples=True)
    p.add_argument("--images", default=None, metavar="PATH",
                   help="an image file or a folder of them (PNG, JPEG): one .aekc per image, with a rate-trained run "
                        "(bottleneck entropy or hyperprior); --out is a .aekc (one image) or a folder")
    p.add_argument("--split", default=None, help="split of a named dataset (default: test)")
    p.add_argument("--out", required=True, help="output container file (.aekc), or a folder with --images")
    p.add_argument("--bits", type=positive_int, default=8, help="quantizer bits per code dimension, 1-16 (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default="range",
                   help="entropy coder: range (fitted per-dimension model, default), lzma or zlib (general-purpose)")
    p.add_argument("--refit", action="store_true", help="refit the quantizer and entropy model on the run's training data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_compress)

    p = sub.add_parser("decompress", help="decode a .aekc file back to arrays or images",
                       description="Read a container written by 'aekit compress' and write the reconstructions as .npy, "
                                   "or images compressed with --images (a file or a folder of .aekc) as PNG.")
    p.add_argument("run_dir", help="the run directory that compressed the file")
    p.add_argument("file", help="a container written by 'aekit compress', or a folder of image containers")
    p.add_argument("--out", required=True, help="output .npy file; or a .png file / a folder for image containers")
    p.set_defaults(func=run_decompress)


def _print_images(stats: dict) -> None:
    cols = ("bpp", "payload_bpp", "psnr", "ms_ssim", "encode_s", "decode_s")
    print(f"{'image':<28} {'size':>11} " + " ".join(f"{c:>11}" for c in cols))
    for r in stats["images"]:
        size = f"{r['width']}x{r['height']}"
        print(f"{Path(r['image']).name[:28]:<28} {size:>11} " + " ".join(f"{r[c]:>11.4f}" for c in cols))
    print(f"{'average':<28} {'':>11} " + " ".join(f"{stats['average'][c]:>11.4f}" for c in cols))
    small = sorted({r["ms_ssim_scales"] for r in stats["images"] if r["ms_ssim_scales"] < 5})
    if small:
        print(f"MS-SSIM of images under 176 pixels a side uses fewer than 5 scales ({small}).", file=sys.stderr)


def run_compress(args) -> int:
    if args.images is not None:
        if args.data is not None:
            raise ConfigError("give --data (arrays) or --images (image files), not both.")
        unused = [f"--{k.replace('_', '-')}" for k, default in (("split", None), ("max_samples", None), ("bits", 8),
                  ("method", "range"), ("refit", False), ("data_dir", None)) if getattr(args, k) != default]
        if unused:
            raise ConfigError(f"{', '.join(unused)} apply to --data only; --images codes with the run's learned "
                              "entropy model.")
        stats = compress_images(args.run_dir, images=args.images, out=args.out)
        print(json.dumps(stats)) if args.json else _print_images(stats)
        return 0
    if args.data is None:
        raise ConfigError("--data or --images is required.")
    stats = compress_run(args.run_dir, out=args.out, data=args.data, data_dir=args.data_dir, split=args.split,
                         max_samples=args.max_samples, bits=args.bits, method=args.method, refit=args.refit,
                         log=lambda line: print(line, file=sys.stderr))
    if args.json:
        print(json.dumps(stats))
    else:
        for k, v in stats.items():
            print(f"{k:>16}: {v:.6g}" if isinstance(v, float) else f"{k:>16}: {v}")
    return 0


def run_decompress(args) -> int:
    if Path(args.file).is_dir() or Path(args.out).suffix.lower() != ".npy":
        outs = decompress_images(args.run_dir, args.file, out=args.out)
        print(f"wrote {len(outs)} PNG image(s) to {outs[0] if len(outs) == 1 else outs[0].parent}", file=sys.stderr)
        return 0
    out = out_path(args.out, (".npy",))
    x_hat = decompress_run(args.run_dir, args.file)
    save_npy(out, x_hat)
    print(f"wrote {tuple(x_hat.shape)} reconstructions to {out}", file=sys.stderr)
    return 0
