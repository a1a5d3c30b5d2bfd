"""Learned image compression on real photographs (issue 20, item 4): rate-distortion of aekit's rate-trained
bottlenecks ('entropy': Balle et al. 2017 factorized prior; 'hyperprior': Balle et al. 2018) against Pillow's
JPEG and WebP, today's aekit compressor (the first-release path) and CompressAI's FactorizedPrior trained the same
way in a side environment, with BD-rate (Bjontegaard, PCHIP on log-rate; aekit.tasks.compression.bd_rate).

    python benchmarks/compression_learned.py            # the full run -> benchmarks/results/compression_learned.json
    python benchmarks/compression_learned.py --quick    # a tiny smoke run; writes no results file
    python benchmarks/compression_learned.py --retable  # recompute the BD-rates / table of the results file

Data (offline, grayscale 'L', value / 255): training patches (random P x P crops, steps x batch of them) from the
scikit-image photographs astronaut, brick, coffee, grass, gravel, hubble_deep_field, immunohistochemistry, moon,
rocket, retina and scikit-learn's china and flower; held out for testing: camera, chelsea, coins, clock, page, text
(whole images, any size; 'cat' is the same photograph as 'chelsea' and is used nowhere).
aekit models: conv backbone, fully convolutional, GDN, `levels` stride-2 3 x 3 convolutions of `channels` channels,
`latent` code channels; Gaussian likelihood sigma = 1, so the loss is bits + lmbda * SSE / 2 per image. Lambdas:
CompressAI's qualities 1, 3, 5, 7 (0.0018 ... 0.0932 on the MSE of 8-bit values), lmbda = 2 * 255^2 * lambda_c.
Training (one loop for every learned codec): Adam(LR) on the loss, the entropy model's quantiles on its auxiliary
loss with their own Adam(AUX_LR), `batch` patches per step drawn by a generator seeded 0, `steps` steps.
CompressAI: FactorizedPrior(N=channels, M=latent) (5 x 5 convolutions, 4 levels, GDN; one input/output channel),
benchmarks/compressai_worker.py run by /tmp/venv-compressai/bin/python on the same patches, batches, loss and
optimizers; each test image edge-padded to a multiple of 16, its 'ans' coder.
Today's compressor: the same backbone (not fully convolutional: it takes P x P inputs) with the default
(deterministic) bottleneck trained on the Gaussian loss, its 32-d codes quantized at 3..8 bits with a histogram
fitted on the training patches; each test image is edge-padded and cut into P x P tiles, one container per image.
Rates: bits per pixel of the whole file (headers counted) and of the payload alone (aekit: the container's
payload; JPEG: the entropy-coded scan between SOS and EOI; WebP: the VP8/VP8L bitstream less its frame
header; CompressAI: its strings, and 4 bytes of image size counted as its header). Quality: PSNR (peak 255 on the
8-bit output) and MS-SSIM, each averaged over the test images per setting; BD-rate per codec against JPEG, WebP,
today's compressor and CompressAI on the averaged curves. Times: milliseconds per image (CPU, 1 thread).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import is_smoke, markdown, write_results  # noqa: E402

import aekit  # noqa: E402
from aekit.errors import ConfigError  # noqa: E402
from aekit.metrics import ms_ssim  # noqa: E402
from aekit.tasks.compression import (LearnedCodec, bd_rate, compress, compress_learned, decompress,  # noqa: E402
                                     decompress_learned, fit_codec)
from aekit.tasks.compression.rd_points import jpeg_payload, webp_payload  # noqa: E402

TRAIN_PHOTOS = ("astronaut", "brick", "coffee", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "moon",
                "rocket", "retina", "sklearn:china", "sklearn:flower")
TEST_PHOTOS = ("camera", "chelsea", "coins", "clock", "page", "text")
LR, AUX_LR = 1e-3, 1e-2
SIDE_PYTHON = Path("/tmp/venv-compressai/bin/python")


def photo(name: str) -> np.ndarray:
    """(H, W) uint8 grayscale."""
    from PIL import Image

    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        a = load_sample_image(name.split(":")[1] + ".jpg")
    else:
        import skimage.data

        a = getattr(skimage.data, name)()
    a = np.asarray(a)
    return np.asarray(Image.fromarray(a).convert("L")) if a.ndim == 3 else a.astype(np.uint8)


def patches(images: list[np.ndarray], n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) uint8 random crops (the learned codecs train on value / 255)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 1, size, size), dtype=np.uint8)
    for i in range(n):
        a = images[rng.integers(len(images))]
        r, c = rng.integers(a.shape[0] - size + 1), rng.integers(a.shape[1] - size + 1)
        out[i, 0] = a[r:r + size, c:c + size]
    return out


def build(bottleneck, *, size: int, channels: int, latent: int, levels: int, seed: int = 0):
    return aekit.build(input_shape=(1, size, size), latent_dim=latent, seed=seed, bottleneck=bottleneck,
                       likelihood={"gaussian": {"sigma": 1.0}} if bottleneck != "deterministic" else None,
                       backbone={"conv": {"channels": [channels] * levels, "activation": "gdn",
                                          "fully_convolutional": bottleneck != "deterministic"}})


def train(model, x: torch.Tensor, *, steps: int, batch: int, lr: float = LR, aux_lr: float = AUX_LR, seed: int = 0):
    """The loop compressai_worker.py runs for CompressAI (same batches, optimizers and learning rates)."""
    aux = model.bottleneck.aux_parameters() if hasattr(model.bottleneck, "aux_parameters") else []
    main = [p for p in model.parameters() if all(p is not a for a in aux)]
    opt = torch.optim.Adam(main, lr=lr)
    aux_opt = torch.optim.Adam(aux, lr=aux_lr) if aux else None
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch_x = x[torch.randint(0, x.shape[0], (batch,), generator=g)]
        opt.zero_grad()
        model(batch_x).loss.backward()
        opt.step()
        if aux_opt is not None:
            aux_opt.zero_grad()
            model.bottleneck.aux_loss().backward()
            aux_opt.step()
    return model.eval()


def quality(a: np.ndarray, b: np.ndarray) -> dict:
    """PSNR (dB, peak 255) and MS-SSIM of two (H, W) uint8 images."""
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    x = torch.from_numpy(a.astype(np.float64) / 255)[None, None]
    y = torch.from_numpy(b.astype(np.float64) / 255)[None, None]
    return {"psnr": 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse), "ms_ssim": ms_ssim(x, y)}


def to_u8(x: torch.Tensor) -> np.ndarray:
    return np.floor(x[0, 0].double().clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def pillow_point(fmt: str, q: int, tests: list[np.ndarray]) -> list[dict]:
    from PIL import Image

    rows = []
    for a in tests:
        buf = io.BytesIO()
        t0 = time.perf_counter()
        Image.fromarray(a).save(buf, format=fmt, quality=q, **({"method": 6} if fmt == "WEBP" else {}))
        t1 = time.perf_counter()
        blob = buf.getvalue()
        b = np.asarray(Image.open(io.BytesIO(blob)).convert("L"))
        t2 = time.perf_counter()
        pay = jpeg_payload(blob) if fmt == "JPEG" else webp_payload(blob)
        rows.append({"bytes": len(blob), "payload_bytes": pay, "encode_s": t1 - t0, "decode_s": t2 - t1,
                     "pixels": a.size, **quality(a, b)})
    return rows


def learned_point(model, tests: list[np.ndarray]) -> list[dict]:
    codec = LearnedCodec(model)
    rows = []
    for a in tests:
        x = torch.from_numpy(a.astype(np.float32) / 255)[None, None]
        t0 = time.perf_counter()
        blob = compress_learned(model, x, codec=codec)
        t1 = time.perf_counter()
        x_hat, header = decompress_learned(model, blob, codec=codec)
        t2 = time.perf_counter()
        rows.append({"bytes": len(blob), "payload_bytes": header["payload_bytes"], "encode_s": t1 - t0,
                     "decode_s": t2 - t1, "pixels": a.size, **quality(a, to_u8(x_hat))})
    return rows


def today_point(model, codec, tests: list[np.ndarray], size: int) -> list[dict]:
    """Today's compressor takes the model's fixed input shape: each image edge-padded to a multiple of the patch
    size and cut into size x size tiles, all tiles of an image in one container (the decoder needs the tile grid,
    which the image size gives; not counted)."""
    rows = []
    for a in tests:
        h, w = a.shape
        padded = np.pad(a, ((0, -h % size), (0, -w % size)), mode="edge")
        gh, gw = padded.shape[0] // size, padded.shape[1] // size
        tiles = padded.reshape(gh, size, gw, size).transpose(0, 2, 1, 3).reshape(-1, 1, size, size)
        x = torch.from_numpy(tiles.astype(np.float32) / 255)
        t0 = time.perf_counter()
        blob = compress(model, x, codec)
        t1 = time.perf_counter()
        x_hat, header = decompress(model, blob, codec)
        t2 = time.perf_counter()
        x_hat = x_hat.reshape(gh, gw, size, size).permute(0, 2, 1, 3).reshape(1, 1, gh * size, gw * size)
        rows.append({"bytes": len(blob), "payload_bytes": header["payload_bytes"], "encode_s": t1 - t0,
                     "decode_s": t2 - t1, "pixels": a.size, **quality(a, to_u8(x_hat[..., :h, :w]))})
    return rows


def summarise(codec: str, setting, rows: list[dict]) -> dict:
    return {"codec": codec, "setting": setting,
            "bpp": float(np.mean([8 * r["bytes"] / r["pixels"] for r in rows])),
            "payload_bpp": float(np.mean([8 * r["payload_bytes"] / r["pixels"] for r in rows])),
            "psnr": float(np.mean([r["psnr"] for r in rows])), "ms_ssim": float(np.mean([r["ms_ssim"] for r in rows])),
            "encode_ms": 1e3 * float(np.mean([r["encode_s"] for r in rows])),
            "decode_ms": 1e3 * float(np.mean([r["decode_s"] for r in rows]))}


def compressai_points(x_train_u8: np.ndarray, tests: list[np.ndarray], cfg: dict, tmp: Path) -> list[dict]:
    """CompressAI's FactorizedPrior through benchmarks/compressai_worker.py in the side environment; the rate of a
    file is the range-coded string plus a 4-byte header (height, width as 16-bit integers; CompressAI itself writes
    no container)."""
    import json
    import subprocess

    job, res = tmp / "compressai_job.npz", tmp / "compressai_out.npz"
    np.savez(job, train=x_train_u8, config=json.dumps(cfg), **{f"test_{i}": a for i, a in enumerate(tests)})
    t0 = time.perf_counter()
    subprocess.run([str(SIDE_PYTHON), str(Path(__file__).parent / "compressai_worker.py"), str(job), str(res)],
                   check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    print(f"compressai worker: {time.perf_counter() - t0:.0f} s", flush=True)
    out = np.load(res)
    points = []
    for k, lm in enumerate(cfg["lmbdas"]):
        rows = []
        for i, a in enumerate(tests):
            payload = int(out[f"payload_{k}_{i}"])
            rows.append({"bytes": payload + 4, "payload_bytes": payload, "encode_s": float(out[f"encode_{k}_{i}"]),
                         "decode_s": float(out[f"decode_{k}_{i}"]), "pixels": a.size,
                         **quality(a, out[f"dec_{k}_{i}"])})
        points.append({**summarise("compressai_fp", lm, rows), "train_cpu_s": float(out[f"train_{k}"])})
    return points


ANCHORS = ("jpeg", "webp", "aekit_quantized", "compressai_fp")


LEARNED = ("entropy", "hyperprior", "compressai_fp")


def mark_diverged(points: list[dict], *, drop_db: float = 3.0) -> list[dict]:
    """A learned codec's model whose PSNR is more than `drop_db` below that of the next smaller lambda (more rate
    weight on distortion gave far less quality: its training diverged) gets "diverged": True; BD-rates leave it out."""
    for codec in LEARNED:
        pts = sorted((p for p in points if p["codec"] == codec), key=lambda p: p["setting"])
        if pts:
            pts[0]["diverged"] = False
        for prev, p in zip(pts, pts[1:]):
            p["diverged"] = bool(p["psnr"] < prev["psnr"] - drop_db)
    return points


def bd_table(points: list[dict]) -> list[dict]:
    curves = {}
    for p in points:
        if not p.get("diverged"):
            curves.setdefault(p["codec"], []).append(p)
    out = []
    for name, pts in curves.items():
        for anchor in ANCHORS:
            if name == anchor or anchor not in curves or len(pts) < 2 or name in ("jpeg", "webp"):
                continue
            row = {"codec": name, "anchor": anchor}
            for rate in ("bpp", "payload_bpp"):
                for q in ("psnr", "ms_ssim"):
                    a = curves[anchor]
                    try:
                        row[f"bd_{rate}_{q}"] = bd_rate([p[rate] for p in a], [p[q] for p in a],
                                                        [p[rate] for p in pts], [p[q] for p in pts])
                    except ConfigError:  # a degenerate curve (e.g. every setting gives the same quality)
                        row[f"bd_{rate}_{q}"] = float("nan")
            out.append(row)
    return out


TARGETS = {"webp": -10.0, "jpeg": -30.0, "compressai_fp": 5.0}  # BD-rate (bpp with headers, PSNR) of 'entropy', %
MIN_OVERLAP_DB = 0.5  # a verdict needs the two curves to share at least this much PSNR


def overlap(points: list[dict], a: str, b: str, quality: str = "psnr") -> list[float] | None:
    qa = [p[quality] for p in points if p["codec"] == a]
    qb = [p[quality] for p in points if p["codec"] == b]
    if not qa or not qb:
        return None
    lo, hi = max(min(qa), min(qb)), min(max(qa), max(qb))
    return [lo, hi] if hi > lo else None


def _verdict_text(anchor: str, v: dict) -> str:
    value = (f"not measurable (PSNR overlap under {MIN_OVERLAP_DB} dB)" if v["bd_rate"] is None or
             v["bd_rate"] != v["bd_rate"] else f"{v['bd_rate']:+.1f}%")
    return f"{anchor} (target {v['target']:+.0f}%): {value}, {'met' if v['met'] else 'not met'}"


def tabulate(payload: dict) -> dict:
    """Add what BENCHMARKS.md shows: title, target, met, note and a markdown table (BD-rates, then every point)."""
    points, bd = mark_diverged(payload["points"]), payload["bd_rate"]
    diverged = [f"{p['codec']} lmbda {p['setting']:g} ({p['bpp']:.2f} bpp, {p['psnr']:.1f} dB)" for p in points
                if p.get("diverged")]
    cfg = payload["config"]
    rows = []
    for r in bd:
        ov = overlap([p for p in points if not p.get("diverged")], r["codec"], r["anchor"])
        rows.append({**r, "psnr_overlap_db": "none" if ov is None else f"{ov[0]:.2f}-{ov[1]:.2f}"})
    verdict = {}
    for anchor, target in TARGETS.items():
        row = next((r for r in bd if r["codec"] == "entropy" and r["anchor"] == anchor), None)
        ov = overlap([p for p in points if not p.get("diverged")], "entropy", anchor)
        value = None if row is None or ov is None or ov[1] - ov[0] < MIN_OVERLAP_DB else row["bd_bpp_psnr"]
        verdict[anchor] = {"bd_rate": value, "target": target, "psnr_overlap_db": ov,
                           "met": value is not None and value == value and value <= target}
    met = all(v["met"] for v in verdict.values())
    pts = sorted(points, key=lambda p: (p["codec"], p["bpp"]))
    table = (markdown(rows, ["codec", "anchor", "bd_bpp_psnr", "bd_payload_bpp_psnr", "bd_bpp_ms_ssim",
                             "bd_payload_bpp_ms_ssim", "psnr_overlap_db"])
             + "\n\n" + markdown(pts, ["codec", "setting", "bpp", "payload_bpp", "psnr", "ms_ssim", "encode_ms",
                                       "decode_ms", "train_cpu_s", "diverged"]))
    budget = (f"patch {cfg['patch']}, batch {cfg['batch']}, {cfg['steps']} Adam steps (lr {cfg['lr']}, aux lr "
              f"{cfg['aux_lr']}) per model on {cfg['steps'] * cfg['batch']} patches from {len(cfg['train_photos'])} "
              f"photographs; tested on {len(cfg['test_photos'])} held-out photographs ({', '.join(cfg['test_photos'])})")
    note = ("Protocol: " + budget + ". The budget is tiny next to the papers' (Balle et al. train about 1M steps of "
            "batch 8 on 256 x 256 crops): these curves say what a 1-thread CPU minute per model buys, not what the "
            "architectures reach. BD-rate: rate change of the codec against the anchor at equal quality (negative "
            "saves rate), PCHIP on log-rate over the quality interval both curves cover (psnr_overlap_db); NaN: no "
            "common interval. bpp counts every header (aekit: the 48-byte container header; CompressAI: its strings "
            "plus a 4-byte size); payload_bpp leaves headers out. Targets ('entropy' vs the anchor, bpp, PSNR): "
            + "; ".join(_verdict_text(a, v) for a, v in verdict.items())
            + (f". Diverged in training and left out of the BD-rates: {'; '.join(diverged)}" if diverged else "")
            + f". CPU load averages during the run: {cfg.get('loadavg')}.")
    return {**payload, "title": "Learned image compression on held-out photographs (issue 20): rate-distortion and "
                                "BD-rate against JPEG, WebP, the first-release compressor and CompressAI",
            "target": "BD-rate <= -10 % vs WebP, <= -30 % vs JPEG, <= +5 % vs CompressAI FactorizedPrior",
            "met": met, "verdict": verdict, "note": note, "table": table}


def retable() -> None:
    """Recompute the BD-rates and the table of benchmarks/results/compression_learned.json in place."""
    import json

    from common import RESULTS

    path = RESULTS / "compression_learned.json"
    payload = json.loads(path.read_text())
    payload["bd_rate"] = bd_table(mark_diverged(payload["points"]))
    path.write_text(json.dumps(tabulate(payload), indent=2) + "\n")
    print(path)


def main() -> None:
    import json
    import os
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (two test photos cropped, few steps); no results file")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--no-compressai", action="store_true", help="skip CompressAI (no side environment)")
    ap.add_argument("--retable", action="store_true", help="only recompute the table of the existing results file")
    ap.add_argument("--reuse", default=None, metavar="POINTS_JSON",
                    help="points.json of an interrupted run (same settings): its points are kept, not recomputed")
    ap.add_argument("--stop-after", type=float, default=None, metavar="SECONDS",
                    help="start no new learned model after this many seconds (the skipped ones are recorded)")
    args = ap.parse_args()
    if args.retable:
        return retable()
    quick = is_smoke()
    torch.set_num_threads(1)
    size, channels, latent, levels = (32, 8, 8, 2) if quick else (64, 64, 96, 4)
    batch = 4 if quick else 8
    steps = args.steps or (20 if quick else 1200)
    # CompressAI's lambdas of its qualities 1, 3, 5, 7 (0.0018 ... 0.0932, on MSE of 8-bit values): loss per pixel
    # bpp + lc * 255^2 * MSE = (bits + la * SSE / 2) / pixels with la = 2 * 255^2 * lc (aekit's Gaussian sigma 1)
    lambdas_c = (0.0067, 0.0932) if quick else (0.0018, 0.0067, 0.025, 0.0932)
    lmbdas = tuple(round(2 * 255**2 * lc, 1) for lc in lambdas_c)
    qualities = (10, 50, 90) if quick else (1, 2, 3, 4, *range(5, 101, 5))  # Pillow's whole range, 1..100
    bit_depths = (4, 6) if quick else (3, 4, 5, 6, 7, 8)
    test_names = TEST_PHOTOS[:2] if quick else TEST_PHOTOS
    tests = [photo(n) for n in test_names]
    if quick:
        tests = [a[:48, :56] for a in tests]  # small crops, any size
    x_u8 = patches([photo(n) for n in (TRAIN_PHOTOS[:2] if quick else TRAIN_PHOTOS)], steps * batch, size)
    x_train = torch.from_numpy(x_u8).float() / 255  # (n, 1, P, P)
    tmp = Path(tempfile.mkdtemp(prefix="aekit-bench-compression-"))
    t_start, cpu_start = time.perf_counter(), time.process_time()
    load = [os.getloadavg()]
    points = json.loads(Path(args.reuse).read_text()) if args.reuse else []
    have = {(p["codec"], p["setting"]) for p in points}
    skipped = []
    partial = tmp / "points.json"
    print(f"partial points: {partial}", flush=True)

    def done(p):
        points.append(p)
        print(p, flush=True)
        partial.write_text(json.dumps(points))

    def may_start(what) -> bool:
        if args.stop_after is not None and time.perf_counter() - t_start > args.stop_after:
            skipped.append(what)
            return False
        return True

    for fmt in ("JPEG", "WEBP"):
        for q in qualities:
            if (fmt.lower(), q) not in have:
                done(summarise(fmt.lower(), q, pillow_point(fmt, q, tests)))

    def learned(bottleneck):
        for lm in lmbdas:
            if (bottleneck, lm) in have or not may_start(f"{bottleneck} {lm}"):
                continue
            model = build({bottleneck: {"lmbda": lm}}, size=size, channels=channels, latent=latent, levels=levels)
            t0 = time.process_time()
            model = train(model, x_train, steps=steps, batch=batch)
            done({**summarise(bottleneck, lm, learned_point(model, tests)), "train_cpu_s": time.process_time() - t0})
        load.append(os.getloadavg())

    learned("entropy")
    if not any(p["codec"] == "aekit_quantized" for p in points) and may_start("aekit_quantized"):
        model = build("deterministic", size=size, channels=channels, latent=32, levels=levels)
        t0 = time.process_time()
        model = train(model, x_train, steps=steps, batch=batch)
        train_s = time.process_time() - t0
        for bits in bit_depths:
            codec = fit_codec(model, x_train, bits=bits)
            done({**summarise("aekit_quantized", bits, today_point(model, codec, tests, size)), "train_cpu_s": train_s})
        load.append(os.getloadavg())
    side = {"N": channels, "M": latent, "lmbdas": [lm for lm in lmbdas if ("compressai_fp", lm) not in have],
            "steps": steps, "batch": batch, "lr": LR, "aux_lr": AUX_LR, "seed": 0}
    compressai_note = None
    if args.no_compressai or not SIDE_PYTHON.exists():
        compressai_note = f"not run: {'--no-compressai' if args.no_compressai else str(SIDE_PYTHON) + ' missing'}"
    elif side["lmbdas"] and may_start("compressai_fp"):
        for p in compressai_points(x_u8, tests, side, tmp):
            done(p)
        load.append(os.getloadavg())
    learned("hyperprior")
    cpu_main = time.process_time() - cpu_start
    bd = bd_table(mark_diverged(points))
    print(markdown(points, ["codec", "setting", "bpp", "payload_bpp", "psnr", "ms_ssim", "encode_ms", "decode_ms"]))
    print(markdown(bd, ["codec", "anchor", "bd_bpp_psnr", "bd_payload_bpp_psnr", "bd_bpp_ms_ssim", "bd_payload_bpp_ms_ssim"]))
    train_cpu = sum(p.get("train_cpu_s", 0.0) for p in points if p["codec"] != "aekit_quantized")
    train_cpu += next((p["train_cpu_s"] for p in points if p["codec"] == "aekit_quantized"), 0.0)
    config = {"patch": size, "channels": channels, "levels": levels, "latent": latent, "steps": steps, "batch": batch,
              "lr": LR, "aux_lr": AUX_LR, "lmbdas": list(lmbdas), "compressai_lambdas": list(lambdas_c),
              "compressai": {**side, "lmbdas": list(lmbdas)}, "compressai_note": compressai_note,
              "train_photos": list(TRAIN_PHOTOS), "test_photos": list(test_names), "seconds": time.perf_counter() - t_start,
              "cpu_seconds_main": cpu_main, "train_cpu_seconds_all_models": train_cpu, "reused": args.reuse,
              "skipped_for_time": skipped, "loadavg": load}
    if not quick:
        print(write_results("compression_learned", tabulate({"config": config, "points": points, "bd_rate": bd})))
    else:
        print(f"smoke run ({config['seconds']:.1f} s): no results file written")


if __name__ == "__main__":
    main()
