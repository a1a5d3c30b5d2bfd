"""`aekit compress RUN_DIR --data SRC --out FILE [--bits B] [--method M]` and
`aekit decompress RUN_DIR FILE --out X.npy`: lossy compression with a trained autoencoder.

The quantizer and entropy model are fitted once per bit depth on the run's training data and
kept in RUN_DIR/compression/codec-<B>bit.safetensors (shared side information, like the weights).
"""

from __future__ import annotations

import json
import sys

from ..tasks.compression import METHODS
from ..tasks.compression.run_files import compress_run, decompress_run
from ..npy_file import save_npy
from .options import add_data_options, out_path
from .parser import positive_int


def add_compress_parsers(sub) -> None:
    p = sub.add_parser("compress", help="compress data with a trained autoencoder into a .aekc file",
                       description="Encode, quantize (uniform, BITS per code dimension), entropy-code and write a "
                                   "versioned, checksummed container; prints bytes per image, bits per pixel, PSNR, SSIM.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train' (deterministic or VAE, no U-Net skips)")
    add_data_options(p, required=True, max_samples=True)
    p.add_argument("--split", default=None, help="split of a named dataset (default: test)")
    p.add_argument("--out", required=True, help="output container file (.aekc)")
    p.add_argument("--bits", type=positive_int, default=8, help="quantizer bits per code dimension, 1-16 (default: %(default)s)")
    p.add_argument("--method", choices=METHODS, default="range",
                   help="entropy coder: range (fitted per-dimension model, default), lzma or zlib (general-purpose)")
    p.add_argument("--refit", action="store_true", help="refit the quantizer and entropy model on the run's training data")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_compress)

    p = sub.add_parser("decompress", help="decode a .aekc file back to arrays",
                       description="Read a container written by 'aekit compress' and write the reconstructions as .npy.")
    p.add_argument("run_dir", help="the run directory that compressed the file")
    p.add_argument("file", help="a container written by 'aekit compress'")
    p.add_argument("--out", required=True, help="output .npy file")
    p.set_defaults(func=run_decompress)


def run_compress(args) -> int:
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
    out = out_path(args.out, (".npy",))
    x_hat = decompress_run(args.run_dir, args.file)
    save_npy(out, x_hat)
    print(f"wrote {tuple(x_hat.shape)} reconstructions to {out}", file=sys.stderr)
    return 0
