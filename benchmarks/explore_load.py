"""Load test of the explorer's decode endpoint: requests per second and latency percentiles.

    python benchmarks/explore_load.py                      # 1, 4 and 16 clients, 10 s each, server on 1 thread
    python benchmarks/explore_load.py --clients 4 --seconds 5 --threads 2

What runs: `aekit explore` in its own process (so the load generator does not share its GIL),
serving a VAE of the MNIST size (784-512-256-16, mlp, Bernoulli decoder; weights as built: decoding
costs the same whatever their values) with up to 2000 MNIST test images on the map (the digits
set when MNIST is not on disk). Each client is a thread with one keep-alive http.client
connection that POSTs {"z": [16 numbers]} to /api/decode back to back; latency is measured per
request from send to the last byte of the answer. A warm-up phase is discarded.

Target: interactive use, p99 latency under 100 ms with 4 concurrent clients (a drag then
updates at 10+ frames per second for every viewer). Client and server share this machine's
cores, so the numbers are a lower bound for a server with cores to itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import markdown, mnist_dir, write_results  # noqa: E402

TARGET_P99_MS = 100.0
TARGET_CLIENTS = 4


def make_run(root: Path, latent_dim: int) -> tuple[Path, str]:
    import aekit
    from aekit.checkpoint import atomic_write_json

    data_dir = mnist_dir()
    have_mnist = (Path(data_dir) / "t10k-images-idx3-ubyte.gz").is_file()
    source = "mnist" if have_mnist else "digits"
    shape = (1, 28, 28) if have_mnist else (1, 8, 8)
    run = root / "run"
    aekit.save(aekit.build("vae", input_shape=shape, latent_dim=latent_dim, seed=0), run)
    data = {"source": source, "data_dir": data_dir if have_mnist else None}
    atomic_write_json(run / "run.json", {"variant": "vae", "data": data})
    return run, source


def start_server(run: Path, threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.Popen([sys.executable, "-m", "aekit", "explore", str(run), "--port", "0", "--max-points", "2000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        line = lines.get(timeout=300)
    except queue.Empty:
        proc.kill()
        raise SystemExit("the explorer did not start within 300 s") from None
    url = line.split(" at ", 1)[1].split(" ", 1)[0]
    return proc, url


def client(host: str, port: int, bodies: list[bytes], start: float, warm_until: float, stop: float, out: list):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    lat, errors, i = [], 0, 0
    while time.perf_counter() < start:
        time.sleep(0.001)
    while True:
        t0 = time.perf_counter()
        if t0 >= stop:
            break
        try:
            conn.request("POST", "/api/decode", bodies[i % len(bodies)], {"Content-Type": "application/json"})
            res = conn.getresponse()
            res.read()
            ok = res.status == 200
        except (OSError, http.client.HTTPException):  # a reset or refused connection counts as an error
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
        t1 = time.perf_counter()
        if t0 >= warm_until:
            lat.append(t1 - t0)
            errors += not ok
        i += 1
    conn.close()
    out.append((lat, errors))


def load(url: str, n_clients: int, seconds: float, warmup: float, latent_dim: int) -> dict:
    parts = urlsplit(url)
    rng = np.random.default_rng(n_clients)
    bodies = [json.dumps({"z": np.round(rng.normal(size=latent_dim), 4).tolist()}).encode() for _ in range(256)]
    out: list = []
    start = time.perf_counter() + 0.2
    warm_until, stop = start + warmup, start + warmup + seconds
    threads = [threading.Thread(target=client, args=(parts.hostname, parts.port, bodies, start, warm_until, stop, out))
               for _ in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = np.concatenate([np.asarray(x, dtype=np.float64) for x, _ in out]) * 1000  # ms
    errors = sum(e for _, e in out)
    return {"clients": n_clients, "requests": int(lat.size), "errors": int(errors),
            "req_per_s": round(lat.size / seconds, 1), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p90_ms": round(float(np.percentile(lat, 90)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server process (default: 1)")
    ap.add_argument("--clients", default="1,4,16", help="comma-separated concurrent clients (default: 1,4,16)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per client count (default: 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="discarded seconds before measuring (default: 2)")
    ap.add_argument("--latent-dim", type=int, default=16)
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="aekit-explore-load-") as tmp:
        run, source = make_run(Path(tmp), args.latent_dim)
        t0 = time.perf_counter()
        proc, url = start_server(run, args.threads)
        startup = time.perf_counter() - t0
        try:
            rows = []
            for n in clients:
                row = load(url, n, args.seconds, args.warmup, args.latent_dim)
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    columns = ["clients", "requests", "errors", "req_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms"]
    table = markdown(rows, columns)
    print(table)
    at_target = [r for r in rows if r["clients"] == TARGET_CLIENTS]
    met = bool(at_target) and at_target[0]["p99_ms"] < TARGET_P99_MS and all(r["errors"] == 0 for r in rows)
    path = write_results("explore_load", {
        "title": f"Explorer decode endpoint under load (server: {args.threads} torch thread(s); {source} VAE, "
                 f"latent {args.latent_dim})",
        "table": table,
        "target": f"p99 < {TARGET_P99_MS:g} ms with {TARGET_CLIENTS} concurrent clients, no errors",
        "met": met, "rows": rows, "server_threads": args.threads, "seconds_per_point": args.seconds,
        "warmup_s": args.warmup, "server_startup_s": round(startup, 2), "data": source,
        "note": "load generator and server share the machine's cores; keep-alive connections, one per client",
    })
    print(f"target {'met' if met else 'MISSED'}; wrote {path}")


if __name__ == "__main__":
    main()
