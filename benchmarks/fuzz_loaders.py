"""Fuzz every aekit loader with hostile files and count what comes out.

    python benchmarks/fuzz_loaders.py                    # 1500 random mutations per loader + every hand-made case
    python benchmarks/fuzz_loaders.py --total 100000 --until 15:40   # toward 10^5 inputs, stopping at 15:40 UTC
    python benchmarks/fuzz_loaders.py --per-target 20 --smoke        # quick check; writes no results file
    python benchmarks/fuzz_loaders.py --quick            # 100 per loader: a smoke run, writes no results file

Loaders (tests/fuzz_harness.py): .npy, .npz, .csv, IDX (plain and .gz), .mat, PNG and JPEG
folders (aekit.load_data), model checkpoints (model.safetensors and config.json: aekit.load),
training states (state.json / state.safetensors: Trainer.load_checkpoint), codec files and .aekc
containers (aekit.tasks.compression). Inputs: the hand-made hostile files of each loader (huge declared
sizes, NaN / inf, wrong dtypes, zero-length, pickle payloads; decompression bombs of 64 MiB in
65 KB for npz / IDX .gz / .mat / PNG and a 6 MB CSV of 3 million columns; a FIFO or a link to
/dev/zero under a data file's name; an .npz member whose size lies; state.json, config.json and
.aekc files edited with their checksums recomputed: huge counts, wrong counts, truncated or
random range-coded payloads, scale / offset that overflow, Infinity epochs, ...) and mutations of
its valid seed file drawn with a seeded RNG: random bytes, truncation, byte flips, a wrong magic
number, zero length, a spliced copy of itself, a duplicated tail. Mutations run in rounds of
--chunk per loader (one process per loader and round, seeds "SEED:round") until --total inputs
or the --until deadline; the crafted inputs run in round 0. Every load runs under the memory
budget of tests/fuzz_harness.py (AEKIT_MEMORY_BUDGET=64M).

Rule: each load must succeed with finite numbers or raise an aekit.errors.AekitError with a
message; any other exception, a load over --timeout seconds, resident memory growing by more
than 64 MiB, or the pickle canary's marker file appearing is a finding. Allocations that
tracemalloc sees above 64 MiB but that never become resident are counted as "reservations".
Each loader runs in its own process with its address space capped (--max-gb), so that no input
can exhaust the shared machine and a crash (segmentation fault) is recorded as a finding; a hang
beyond 3x --timeout aborts that process with a traceback (faulthandler).
"""

from __future__ import annotations

import argparse
import calendar
import collections
import faulthandler
import itertools
import json
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
from common import markdown, write_results  # noqa: E402

import fuzz_harness as fh  # noqa: E402


class Hang(Exception):
    pass


def fuzz_target(target: fh.Target, marker: Path, args) -> tuple[dict, list[dict]]:
    """Run the crafted inputs and args.per_target mutations of one loader; (summary row, findings)."""

    def on_alarm(signum, frame):
        raise Hang(f"no answer within {args.timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    rng = random.Random(f"{args.seed}:{target.name}" + (f":{args.round}" if args.round else ""))
    crafted = [] if args.no_crafted else [(f"crafted: {what}", files) for what, files in target.crafted]
    seed_bytes = target.seed[target.mutated]

    def mutations():
        for _ in range(args.per_target):
            how = rng.choice(fh.MUTATIONS)
            yield how, {target.mutated: fh.mutate(seed_bytes, how, rng)}

    cases = itertools.chain(crafted, mutations())
    kinds, errors, findings = collections.Counter(), collections.Counter(), []
    reservations, slowest, peak_rss = 0, 0.0, 0
    t0 = time.perf_counter()
    n_cases = 0
    for what, files in cases:
        if args.stop_at and time.time() > args.stop_at:
            break
        n_cases += 1
        with tempfile.TemporaryDirectory() as d:
            fh.write_files(Path(d), {**target.seed, **files})
            faulthandler.dump_traceback_later(3 * args.timeout + 30, exit=True)
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            t = time.perf_counter()
            try:
                outcome = fh.check_outcome(target, Path(d), marker)
            except Hang as exc:  # raised outside the loader's own try (rare)
                outcome = fh.Outcome("other-exception", f"Hang: {exc}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                faulthandler.cancel_dump_traceback_later()
            dt = time.perf_counter() - t
        if outcome.detail.startswith("Hang"):
            outcome = fh.Outcome("hang", outcome.detail)
        kinds[outcome.kind] += 1
        reservations += outcome.reservation
        slowest, peak_rss = max(slowest, dt), max(peak_rss, outcome.rss_growth)
        if outcome.kind == "aekit-error":
            errors[outcome.detail.split(":")[0]] += 1
        if outcome.is_finding:
            findings.append({"loader": target.name, "input": what, "kind": outcome.kind, "detail": outcome.detail})
            print(f"FINDING {target.name} / {what}: {outcome.kind}: {outcome.detail[:300]}", file=sys.stderr, flush=True)
    n_findings = sum(v for k, v in kinds.items() if k not in ("ok", "aekit-error"))
    row = {"loader": target.name, "inputs": n_cases, "crafted": len(crafted),
           "loaded": kinds["ok"], "aekit errors": kinds["aekit-error"], "findings": n_findings,
           "reservations": reservations, "max s/input": round(slowest, 3),
           "max RSS growth MiB": round(peak_rss / 2**20, 1), "seconds": round(time.perf_counter() - t0, 1),
           "max RSS MiB": round(fh._peak_rss_lifetime() / 2**20, 1),
           "outcomes": dict(kinds), "error_types": dict(errors)}
    return row, findings


def run_child(args) -> None:
    """--child NAME: fuzz one loader in this process, print its result as one JSON line."""
    torch.set_num_threads(args.threads)
    resource.setrlimit(resource.RLIMIT_AS, (int(args.max_gb * 2**30), resource.getrlimit(resource.RLIMIT_AS)[1]))
    faulthandler.enable()  # a crash inside a C extension prints where it happened
    marker = Path(args.marker)
    target = next(t for t in fh.targets(marker) if t.name == args.child)
    row, findings = fuzz_target(target, marker, args)
    print("RESULT " + json.dumps({"row": row, "findings": findings}), flush=True)


def merge(rows: list[dict]) -> dict:
    """One loader's row over several rounds."""
    out = dict(rows[0])
    for r in rows[1:]:
        for k in ("inputs", "crafted", "loaded", "aekit errors", "findings", "reservations", "seconds"):
            out[k] = round((out.get(k) or 0) + (r.get(k) or 0), 1) if k == "seconds" else (out.get(k) or 0) + (r.get(k) or 0)
        for k in ("max s/input", "max RSS growth MiB", "max RSS MiB"):
            out[k] = max(x for x in (out.get(k), r.get(k)) if x is not None) if (out.get(k), r.get(k)) != (None, None) else None
        for k in ("outcomes", "error_types"):
            merged = collections.Counter(out.get(k) or {})
            merged.update(r.get(k) or {})
            out[k] = dict(merged)
    return out


def deadline(text: str | None) -> float | None:
    """'HH:MM' (UTC, today) -> epoch seconds."""
    if not text:
        return None
    hour, minute = (int(v) for v in text.split(":"))
    now = time.gmtime()
    return calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, hour, minute, 0, 0, 0, 0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-target", type=int, default=1500, help="random mutations per loader (default: 1500)")
    p.add_argument("--total", type=int, default=None, help="aim for this many inputs in all (overrides --per-target)")
    p.add_argument("--chunk", type=int, default=1500, help="mutations per loader and round (default: 1500)")
    p.add_argument("--until", default=None, help="HH:MM (UTC): start nothing after, stop loads at this time")
    p.add_argument("--smoke", action="store_true", help="a quick check: print, write no results file")
    p.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-crafted", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stop-at", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per load before it counts as a hang")
    p.add_argument("--max-gb", type=float, default=8.0, help="address-space cap of each loader's process (GiB)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    p.add_argument("--only", default=None, help="run only the loaders whose name contains this")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--marker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="100 mutations per loader; a smoke run that writes no results file")
    args = p.parse_args()
    if args.quick:
        args.per_target = 100
    if args.child:
        return run_child(args)

    marker = Path(tempfile.mkdtemp(prefix="aekit-fuzz-")) / "code-was-executed"
    all_targets = fh.targets(marker)
    chosen = [t for t in all_targets if args.only is None or args.only in t.name]
    names = [t.name for t in chosen]
    n_crafted = sum(len(t.crafted) for t in chosen)
    per_target = args.per_target if args.total is None else max(0, -(-(args.total - n_crafted) // len(names)))
    stop_at = deadline(args.until)
    per_loader: dict[str, list[dict]] = {name: [] for name in names}
    findings = []
    t_start = time.perf_counter()
    done, rnd = {name: 0 for name in names}, 0
    while any(done[n] < per_target for n in names) and not (stop_at and time.time() >= stop_at):
        for name in names:  # one process per loader and round: a crash (segfault) is a finding, not the end
            if stop_at and time.time() >= stop_at:
                break
            n = min(args.chunk, per_target - done[name]) if rnd else min(args.chunk, per_target)
            cmd = [sys.executable, __file__, "--child", name, "--marker", str(marker), "--per-target", str(n),
                   "--seed", str(args.seed), "--timeout", str(args.timeout), "--max-gb", str(args.max_gb),
                   "--threads", str(args.threads), "--round", str(rnd)]
            cmd += ["--no-crafted"] if rnd else []
            cmd += ["--stop-at", str(stop_at)] if stop_at else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            sys.stderr.write(proc.stderr)
            result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")),
                          None)
            done[name] += n
            if result is None:  # crashed or was killed: every input of this process counts as lost
                detail = f"the loader process ended with code {proc.returncode}: {proc.stderr.strip()[-400:]}"
                findings.append({"loader": name, "input": f"(process, round {rnd})", "kind": "crash", "detail": detail})
                per_loader[name].append({"loader": name, "inputs": 0, "crafted": 0, "loaded": 0, "aekit errors": 0,
                                         "findings": 1, "reservations": 0, "max s/input": None,
                                         "max RSS growth MiB": None, "seconds": None})
                print(f"CRASH {name} round {rnd}: {detail}", flush=True)
                continue
            per_loader[name].append(result["row"])
            findings += result["findings"]
            print(f"round {rnd} | " + " | ".join(f"{k}={v}" for k, v in result["row"].items()
                                                 if k not in ("outcomes", "error_types")), flush=True)
        rnd += 1
    rows = [merge(per_loader[n]) for n in names if per_loader[n]]
    total_inputs = sum(r["inputs"] for r in rows)
    columns = ["loader", "inputs", "crafted", "loaded", "aekit errors", "findings", "reservations", "max s/input",
               "max RSS growth MiB"]
    table = markdown(rows, columns)
    print(table)
    seconds = round(time.perf_counter() - t_start, 1)
    kinds = collections.Counter(f["kind"] for f in findings)
    summary = {"inputs tried": total_inputs, "aimed for": (args.total if args.total is not None
                                                           else n_crafted + per_target * len(names)),
               "stopped by the deadline": bool(stop_at and time.time() >= stop_at and total_inputs < (
                   args.total or n_crafted + per_target * len(names))),
               "tracebacks (other exceptions)": kinds["other-exception"], "hangs": kinds["hang"],
               "crashes": kinds["crash"], "memory findings": kinds["memory"], "code executed": marker.exists(),
               "peak RSS growth of one load (MiB)": max((r["max RSS growth MiB"] or 0) for r in rows) if rows else None,
               "peak RSS of a loader process (MiB)": max((r.get("max RSS MiB") or 0) for r in rows) if rows else None,
               "memory budget of every load": fh.BUDGET, "rounds": rnd}
    print(f"{total_inputs} inputs, {len(findings)} findings, {seconds:.0f} s")
    print(json.dumps(summary))
    if args.smoke:
        return
    write_results("fuzz_loaders", {
        "title": "Hostile input: fuzzing every loader",
        "table": table,
        "target": "every input loads cleanly or raises an aekit error with a message; no other exception, no crash, "
                  f"no hang (> {args.timeout:g} s), no resident memory growth > 64 MiB, no code executed from a file",
        "met": not findings and not marker.exists(),
        "summary": summary,
        "inputs": total_inputs, "findings": findings, "per_loader": rows, "per_target": per_target,
        "chunk": args.chunk, "until_utc": args.until,
        "seed": args.seed, "timeout_s": args.timeout, "max_gb": args.max_gb, "threads": args.threads,
        "code_executed": marker.exists(), "seconds": seconds,
    }, quick=args.quick)


if __name__ == "__main__":
    main()
