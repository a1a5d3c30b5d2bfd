"""`aekit export RUN_DIR --format onnx --out DIR`: the encoder and decoder as ONNX graphs.

    aekit export runs/vae --format onnx --out vae-onnx
    # vae-onnx/encoder.onnx  x (batch, *shape) -> z (batch, latent_dim)
    # vae-onnx/decoder.onnx  z (batch, latent_dim) -> x_mean (batch, *shape)
    # vae-onnx/aekit-onnx.json  shapes, names, and the largest difference to PyTorch at export

    aekit export runs/vae --pretrained vae-hub --license mit
    # vae-hub/config.json, model.safetensors, README.md: a Hugging Face Hub folder (aekit.from_pretrained)
"""

from __future__ import annotations

import json


def add_export_parser(sub) -> None:
    from ..tasks.export import FORMATS

    p = sub.add_parser("export", help="export a run's encoder and decoder (ONNX) for use outside PyTorch",
                       description="Write the encoder (x -> z) and decoder (z -> reconstruction mean) of a run's "
                                   "kept model as separate ONNX graphs with a dynamic batch size, plus a JSON file "
                                   "with their shapes and tensor names. Needs: pip install 'aekit[onnx]'.")
    p.add_argument("run_dir", help="a run directory written by 'aekit train'")
    p.add_argument("--format", default="onnx", help=f"export format: {', '.join(FORMATS)} (default: onnx)")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/onnx)")
    p.add_argument("--pretrained", default=None, metavar="FOLDER",
                   help="instead: write the kept model as a Hugging Face Hub folder (config, weights, model card) "
                        "loadable with aekit.from_pretrained")
    p.add_argument("--license", default="other", help="--pretrained: the model card's license id (default: other)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from ..tasks.export import export_run

    if args.pretrained is not None:
        from ..errors import ConfigError
        from ..pretrained import export_run_pretrained

        if args.out is not None:
            raise ConfigError("--pretrained FOLDER is the output folder; --out is for --format exports.")
        folder = export_run_pretrained(args.run_dir, args.pretrained, license=args.license)
        print(json.dumps({"pretrained": str(folder), "files": ["config.json", "model.safetensors", "README.md"]}))
        return 0
    meta = export_run(args.run_dir, out_dir=args.out, format=args.format)
    out = args.out if args.out is not None else f"{args.run_dir}/onnx"
    print(json.dumps({"out": str(out), "graphs": {k: v["file"] for k, v in meta["graphs"].items()},
                      "input_shape": meta["input_shape"], "latent_dim": meta["latent_dim"],
                      "max_abs_diff_vs_torch": meta["max_abs_diff_vs_torch"]}))
    return 0
