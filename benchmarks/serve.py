"""Serving latency: POST /recommend on loopback, server and client in separate processes.

A small SASRec (hidden 64) is trained on synthetic sequences that walk within 40 item groups
(2,000 items, 1,000 users) and serves user vectors. Its catalogue is replaced by N vectors of
dim 64, of one of two kinds: ``random`` (unit Gaussian: no structure, the hardest case for any
approximate index) or ``trained`` (the run's own item embeddings, tiled up to N with Gaussian
jitter of 0.25× their per-coordinate spread: clustered like real embeddings; said in each
row's setting). The run's items keep their ids and vectors (row 1..2000), the others are
``s<j>``.

For each N, vector kind and method the index is built once with every core and saved
(``serve.index_store.load_or_build``; build seconds), loaded again (load seconds), then a real
uvicorn server (a subprocess) loads it and serves; a client in another process sends
``{"user_id": ..., "k": 10}`` over keep-alive connections (a small asyncio HTTP/1.1 client, so
the client costs little). On a machine with at least 2 cores the server is pinned to one core
and the client to another (``os.sched_setaffinity``); the setting says so. Three loads each:

* ``sequential``: one request at a time (closed loop, one connection);
* ``closed-8``: 8 connections, each sending its next request when answered;
* ``open-R``: requests start at a fixed rate R per second whatever the answers (open loop);
  latency counts from the scheduled start, so queueing behind a slow answer is counted.

Reported per row: p50/p99/mean latency, throughput, errors, index kind and parameters,
recall@10 of the exact top-10 on held queries (user vectors for ``trained``, random unit
vectors for ``random``: for isotropic items any direction is alike), build and load seconds,
the batches formed, and the load average when the row was measured.

    .venv/bin/python benchmarks/serve.py --quick      # 10k and 100k, fewer requests (~4 min)
    .venv/bin/python benchmarks/serve.py              # 10k, 100k, 1M (see docs/benchmarks/serve.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, results, results_name
from recadapt.experiments import experiment_parser
from recadapt.report.tables import text_table

DIM = 64
#: benchmark method → ``--index`` kind
METHOD_KINDS = {"exact": "exact", "faiss-ivf": "ivf", "faiss-ivfpq": "ivfpq", "faiss-hnsw": "hnsw"}
#: the approximate methods measured by default: the two that ``--index auto`` chooses between
ANN_METHODS = ["faiss-ivf", "faiss-ivfpq"]
K = 10
USERS, ITEMS, GROUPS = 1000, 2000, 40
JITTER = 0.25
CACHE = REPO / "benchmarks" / ".cache" / "serve"  # ignored (.cache/): saved indexes


def train_user_encoder(folder: Path) -> Path:
    """A small SASRec run (64-d user and item vectors) on walks within item groups."""
    from recadapt.experiments import train_into

    rng = np.random.default_rng(0)
    size = ITEMS // GROUPS
    rows = ["user_id,item_id,timestamp"]
    for user in range(USERS):
        group, start = int(rng.integers(GROUPS)), int(rng.integers(size))
        rows += [f"u{user},i{group * size + (start + step) % size + 1},{step}"
                 for step in range(20)]
    (folder / "inter.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return train_into({
        "data": {"source": str(folder / "inter.csv"), "max_seq_len": 20},
        "model": {"name": "sasrec", "hidden_size": DIM},
        "train": {"epochs": 5, "batch_size": 128, "num_threads": 2},
        "eval": {"ks": [10]},
    }, folder / "run")


def catalogue_vectors(run, size: int, kind: str, seed: int = 0) -> np.ndarray:
    """``[size + 1, DIM]``: row 0 zero, rows 1..m the run's own items, the rest ``kind``."""
    import torch

    with torch.no_grad():
        own = run.model.item_embeddings().float().numpy()
    rng = np.random.default_rng(seed)
    if kind == "random":
        vectors = rng.standard_normal((size + 1, DIM), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    else:
        items = own[1:]
        spread = items.std(axis=0, keepdims=True)
        vectors = np.empty((size + 1, DIM), dtype=np.float32)
        vectors[1:] = items[np.arange(size) % len(items)]
        vectors[1:] += JITTER * spread * rng.standard_normal((size, DIM), dtype=np.float32)
    vectors[0] = 0
    vectors[: min(len(own), size + 1)] = own[: size + 1]
    return vectors


def queries_for(run, kind: str) -> np.ndarray:
    """The queries an index is tuned and measured on: user vectors of the run's users for
    trained items, random unit vectors for random ones."""
    from recadapt.serve.index import random_queries
    from recadapt.serve.recommend import padded_histories, user_queries

    if kind == "random":
        return random_queries(1000, DIM)
    return user_queries(run, padded_histories(run), count=1000)


def index_folder(size: int, kind: str, method: str, target: float) -> Path:
    return CACHE / f"{kind}-{size}-{method}-{target}"


def prepare(args: argparse.Namespace) -> dict:
    """Build the index with every core (a fresh build), then load it as a server would."""
    from recadapt.serve.index_store import load_or_build
    from recadapt.train.runs import load_run

    run = load_run(args.run)
    vectors = catalogue_vectors(run, args.size, args.vectors)
    folder = index_folder(args.size, args.vectors, args.method, args.recall_target)
    for name in ("index.faiss", "index.json"):  # time a build, not an earlier run's load
        (folder / name).unlink(missing_ok=True)
    kind = METHOD_KINDS[args.method]
    started = time.perf_counter()
    index = load_or_build(vectors, folder, lambda: queries_for(run, args.vectors),
                          args.recall_target, kind, ann_threshold=None)
    built = time.perf_counter() - started
    started = time.perf_counter()
    again = load_or_build(vectors, folder, None, args.recall_target, kind, ann_threshold=None)
    loaded = time.perf_counter() - started
    params = {k: v for k, v in index.params.items() if k in ("nlist", "nprobe", "efSearch", "M")}
    return {"build_seconds": built, "load_seconds": loaded if index.kind != "exact" else 0.0,
            "recall_at_10": index.recall_at_10, "index": index.kind,
            "index_params": ", ".join(f"{k} {v}" for k, v in params.items()) or "-",
            "reloaded": again.params.get("source", "built").startswith("loaded")}


def worker(args: argparse.Namespace) -> None:
    """The server process: pinned, load the run and the saved index, serve on loopback."""
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    import torch
    import uvicorn

    from recadapt.serve.app import Catalogue, create_app
    from recadapt.serve.index_store import load_or_build
    from recadapt.train.runs import load_run

    torch.set_num_threads(1)
    run = load_run(args.run)
    vectors = catalogue_vectors(run, args.size, args.vectors)
    kind = METHOD_KINDS[args.method]
    started = time.perf_counter()
    index = load_or_build(vectors, index_folder(args.size, args.vectors, args.method,
                                                args.recall_target),
                          None, args.recall_target, kind, ann_threshold=None, threads=1)
    server_load = time.perf_counter() - started
    if index.kind != "exact":
        import faiss

        faiss.omp_set_num_threads(1)
    own = [str(raw) for raw in run.prepared.dataset.item_ids]
    ids = own + [f"s{j}" for j in range(len(own), args.size + 1)]
    app = create_app(run, catalogue=Catalogue(ids, [None] * len(ids), index),
                     batch_window_ms=args.batch_window_ms)
    print(json.dumps({"server_load_seconds": server_load,
                      "source": index.params.get("source", "built")}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                **({"loop": "asyncio", "http": "h11"} if args.plain_http else {}))


# -- the client process ----------------------------------------------------------------------

def _request(user: int) -> bytes:
    body = json.dumps({"user_id": f"u{user}", "k": K}).encode()
    return (b"POST /recommend HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    payload: bytes) -> int:
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return status


async def _load(port: int, mode: str, count: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (s) and errors of ``count`` requests (or ``seconds``) under ``mode``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    pool: list = []

    async def connection():
        return pool.pop() if pool else await asyncio.open_connection("127.0.0.1", port)

    async def one(number: int, began: float) -> None:
        nonlocal errors
        try:
            reader, writer = await connection()
            status = await _exchange(reader, writer, _request(number % USERS))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
            errors += 1  # counted, the connection dropped; the load goes on
            print(f"request {number}: {type(err).__name__}: {err}", file=sys.stderr)
            return
        latencies.append(time.perf_counter() - began)
        errors += status != 200
        pool.append((reader, writer))

    for number in range(20):  # warm-up: connections, caches, the first batches
        await one(number, time.perf_counter())
    latencies.clear()
    if mode.startswith("open-"):
        rate = float(mode.removeprefix("open-"))
        start = time.perf_counter() + 0.01
        tasks = []
        for number in range(count):
            when = start + number / rate
            if when > deadline:
                break
            await asyncio.sleep(max(0.0, when - time.perf_counter()))
            tasks.append(asyncio.create_task(one(number, when)))  # from the scheduled time
        await asyncio.gather(*tasks)
    else:
        workers = 1 if mode == "sequential" else int(mode.removeprefix("closed-"))
        numbers = iter(range(count))

        async def loop() -> None:
            for number in numbers:
                if time.perf_counter() > deadline:
                    return
                await one(number, time.perf_counter())

        await asyncio.gather(*(loop() for _ in range(workers)))
    for _, writer in pool:
        writer.close()
    return latencies, errors


def client(args: argparse.Namespace) -> None:
    """The client process (pinned): run one load, print its latencies."""
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    started = time.perf_counter()
    latencies, errors = asyncio.run(_load(args.port, args.mode, args.requests, args.seconds))
    print(json.dumps({"latencies": latencies, "errors": errors,
                      "wall": time.perf_counter() - started}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cores() -> tuple[int | None, int | None, str]:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        return cores[0], cores[1], f"server pinned to core {cores[0]}, client to core {cores[1]}"
    return None, None, "server and client share the one core"


def _self(*options: str) -> list[str]:
    return [sys.executable, __file__, *options]


def measure(args: argparse.Namespace, run_dir: Path, size: int, vectors: str, method: str,
            modes: list[str]) -> list[dict]:
    """Prepare the index, start a pinned server, run each load from a pinned client."""
    common = ["--run", str(run_dir), "--size", str(size), "--vectors", vectors, "--method",
              method, "--recall-target", str(args.recall_target)]
    prepared = json.loads(subprocess.run(_self("--prepare", *common), check=True,
                                         capture_output=True, text=True).stdout.splitlines()[-1])
    server_core, client_core, pinning = _cores()
    port = free_port()
    server = subprocess.Popen(
        _self("--worker", *common, "--port", str(port), "--batch-window-ms",
              str(args.batch_window_ms), *(["--core", str(server_core)]
                                           if server_core is not None else []),
              *(["--plain-http"] if args.plain_http else [])),
        stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        started = json.loads(server.stdout.readline() or "{}")
        if not started:
            raise RuntimeError(f"the server for {size} items / {method} did not start")
        _wait(port)
        for mode in modes:
            requests = args.requests
            if mode.startswith("open-"):  # a fixed duration at the rate
                requests = int(float(mode.removeprefix("open-")) * args.open_seconds)
            load = os.getloadavg()[0]
            done = subprocess.run(
                _self("--client", "--port", str(port), "--mode", mode, "--requests",
                      str(requests), "--seconds", str(args.seconds),
                      *(["--core", str(client_core)] if client_core is not None else [])),
                capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"the {mode} client failed: {done.stderr[-2000:]}")
            out = done.stdout
            got = json.loads(out.splitlines()[-1])
            health = _health(port)
            ms = np.array(got["latencies"]) * 1000
            name = f"{size // 1000}k" if size < 10**6 else f"{size // 10**6}M"
            source = ("random unit vectors" if vectors == "random" else
                      f"SASRec item vectors tiled ×{max(1, size // ITEMS)} with jitter "
                      f"{JITTER}×spread")
            rows.append({
                "dataset": f"{'synthetic' if vectors == 'random' else 'trained-tiled'}-{name}",
                "method": method,
                "setting": f"{mode}; POST /recommend k={K}, dim {DIM}, "
                           f"{source}; recall target {args.recall_target}; batch window "
                           f"{args.batch_window_ms} ms; {pinning}; "
                           f"{'asyncio+h11' if args.plain_http else 'uvloop+httptools'}",
                "items": size, "vectors": vectors, "load": mode, "requests": len(ms),
                "errors": got["errors"], "seconds": got["wall"],
                "throughput_rps": len(ms) / got["wall"],
                "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "mean_ms": float(ms.mean()), "index_params": prepared["index_params"],
                "build_seconds": prepared["build_seconds"],
                "load_seconds": prepared["load_seconds"],
                "server_load_seconds": started["server_load_seconds"],
                "recall_at_10": prepared["recall_at_10"],
                "batches": health["batching"]["batches"],
                "batched_queries": health["batching"]["queries"],
                "load_avg_1m": load})
            print(text_table([rows[-1]], COLUMNS).splitlines()[-1], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def _wait(port: int) -> None:
    for _ in range(600):
        try:
            _health(port)
            return
        except OSError:
            time.sleep(0.1)


def _health(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        return json.loads(response.read())


COLUMNS = ["load", "requests", "errors", "throughput_rps", "p50_ms",
           "p99_ms", "index_params", "recall_at_10", "build_seconds", "load_seconds",
           "load_avg_1m"]


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0],
                               quick="10k and 100k items, fewer requests (~4 min, 2 cores)",
                               omit=["resume", "runs_dir", "threads"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--vector-kinds", nargs="+", default=["random", "trained"],
                        choices=["random", "trained"])
    parser.add_argument("--methods", nargs="+", default=None,
                        choices=list(METHOD_KINDS),
                        help="default: exact at 10k; from 100k faiss-ivf and faiss-ivfpq (the "
                        "two --index auto chooses between), plus exact at 100k")
    parser.add_argument("--modes", nargs="+", default=["sequential", "closed-8", "open-100"])
    parser.add_argument("--requests", type=int, default=1000, help="per closed-loop load")
    parser.add_argument("--seconds", type=float, default=30, help="cap per load")
    parser.add_argument("--open-seconds", type=float, default=10,
                        help="duration of an open-loop load")
    parser.add_argument("--recall-target", type=float, default=0.95)
    parser.add_argument("--batch-window-ms", type=float, default=1.0)
    parser.add_argument("--plain-http", action="store_true",
                        help="uvicorn's asyncio loop and h11 parser instead of uvloop+httptools")
    parser.add_argument("--name", default="serve")
    for hidden in ("--prepare", "--worker", "--client"):
        parser.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden, kind in (("--run", str), ("--size", int), ("--vectors", str),
                         ("--method", str), ("--port", int), ("--core", int),
                         ("--mode", str)):
        parser.add_argument(hidden, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        print(json.dumps(prepare(args)))
        return
    if args.worker:
        worker(args)
        return
    if args.client:
        client(args)
        return
    sizes = args.sizes
    if args.quick:
        sizes, args.requests, args.open_seconds = [10_000, 100_000], 300, 4
    table = results(results_name(args.name, args.quick), keep=False,
                    key=("dataset", "method", "setting"))
    with tempfile.TemporaryDirectory(prefix="recadapt-bench-serve-") as folder:
        run_dir = train_user_encoder(Path(folder))
        for size in sizes:
            for vectors in args.vector_kinds:
                methods = args.methods or (["exact"] if size < 50_000 else
                                           [*ANN_METHODS, "exact"] if size <= 100_000 else
                                           ANN_METHODS)
                for method in methods:
                    if args.only and method not in args.only:
                        continue
                    modes = args.modes if method != "exact" or size < 50_000 else [
                        m for m in args.modes if not m.startswith("open-")] or args.modes
                    for row in measure(args, run_dir, size, vectors, method, modes):
                        table.rows.append(row)
                    table.write()
    print()
    print(text_table(table.rows, COLUMNS))
    print(f"\nwrote {table.write()}")


if __name__ == "__main__":
    main()
