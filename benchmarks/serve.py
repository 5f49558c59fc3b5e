"""Serving throughput and latency: POST /recommend on loopback, exact vs FAISS HNSW top-K.

A tiny SASRec (hidden 64) is trained on synthetic cyclic sequences and serves user vectors;
its catalogue is replaced by N random unit vectors (dim 64; the run's items keep their ids so
histories resolve, the rest are ``s<j>``). For each N and method a real uvicorn server runs in
a subprocess (``--worker``) and client threads send ``{"user_id": ..., "k": 10}`` with
keep-alive connections until ``--requests`` answers or ``--seconds`` pass. Reported: index
build time, throughput, p50/p99/mean latency (client side), and the HNSW's recall@10 of the
exact top-10 over 200 random unit queries. ``--quick``: N = 10k and 100k, 300 requests.

    .venv/bin/python benchmarks/serve.py --quick
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common import results, results_name
from recadapt.experiments import experiment_parser
from recadapt.report.tables import text_table

DIM = 64
K = 10


def train_user_encoder(folder: Path) -> Path:
    """A small SASRec run whose user vectors are 64-d, trained for a few epochs."""
    from recadapt.experiments import train_into

    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,timestamp"]
    for user in range(200):
        start = int(rng.integers(100))
        rows += [f"u{user},i{(start + step) % 100 + 1},{step}" for step in range(20)]
    (folder / "inter.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return train_into({
        "data": {"source": str(folder / "inter.csv"), "max_seq_len": 20},
        "model": {"name": "sasrec", "hidden_size": DIM},
        "train": {"epochs": 3, "batch_size": 64, "num_threads": 1},
        "eval": {"ks": [10]},
    }, folder / "run")


def synthetic_vectors(size: int, seed: int = 0) -> np.ndarray:
    """``[size + 1, DIM]`` random unit vectors, row 0 (padding) zero."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size + 1, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0] = 0
    return vectors


def recall_at_k(index, vectors: np.ndarray, queries: int = 200) -> float:
    """Share of the exact top-K (matrix product) that ``index`` finds, random unit queries."""
    import torch

    from recadapt.serve.index import ExactIndex

    exact = ExactIndex(vectors)
    found = []
    for query in torch.from_numpy(synthetic_vectors(queries, seed=1)[1:]):
        truth = {i for i, _ in exact.search(query, K)}
        found.append(len(truth & {i for i, _ in index.search(query, K)}) / K)
    return float(np.mean(found))


def worker(args: argparse.Namespace) -> None:
    """The server process: load the run, build the synthetic catalogue, serve on loopback."""
    import torch
    import uvicorn

    from recadapt.serve.app import Catalogue, create_app
    from recadapt.serve.index import build_index
    from recadapt.train.runs import load_run

    torch.set_num_threads(args.threads)
    if args.method == "faiss-hnsw":
        import faiss

        faiss.omp_set_num_threads(args.threads)
    run = load_run(args.run)
    vectors = synthetic_vectors(args.size)
    started = time.perf_counter()
    index = build_index(vectors, ann_threshold=0 if args.method == "faiss-hnsw" else None)
    build_seconds = time.perf_counter() - started
    own = [str(raw) for raw in run.prepared.dataset.item_ids]
    ids = own + [f"s{j}" for j in range(len(own), args.size + 1)]
    catalogue = Catalogue(ids, [None] * len(ids), index)
    recall = recall_at_k(index, vectors) if index.kind != "exact" else 1.0
    print(json.dumps({"build_seconds": build_seconds, "recall_at_10": recall}), flush=True)
    uvicorn.run(create_app(run, catalogue=catalogue), host="127.0.0.1", port=args.port,
                log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(run_dir: Path, size: int, method: str, requests: int, seconds: float,
            concurrency: int, threads: int) -> dict:
    """Start a server, wait for it, send the requests from ``concurrency`` threads."""
    import httpx

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--worker", "--run", str(run_dir), "--size", str(size),
         "--method", method, "--port", str(port), "--threads", str(threads)],
        stdout=subprocess.PIPE, text=True)
    try:
        built = json.loads(server.stdout.readline() or "{}")  # after the index is built
        if not built:
            raise RuntimeError(f"the server for {size} items / {method} did not start")
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        users = [f"u{i}" for i in range(200)]
        latencies: list[float] = []
        errors = [0]
        counter = iter(range(requests))
        lock = threading.Lock()
        deadline = time.perf_counter() + seconds

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as session:
                while time.perf_counter() < deadline:
                    with lock:
                        number = next(counter, None)
                    if number is None:
                        return
                    began = time.perf_counter()
                    response = session.post("/recommend", json={"user_id": users[number % 200],
                                                                "k": K})
                    elapsed = time.perf_counter() - began
                    with lock:
                        latencies.append(elapsed)
                        errors[0] += response.status_code != 200

        started = time.perf_counter()
        pool = [threading.Thread(target=client) for _ in range(concurrency)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies) * 1000
    return {"dataset": f"synthetic-{size // 1000}k" if size < 10**6 else
            f"synthetic-{size // 10**6}M", "method": method,
            "setting": f"POST /recommend k={K}, dim {DIM}, {concurrency} client threads, "
                       f"server torch threads {threads}, loopback uvicorn",
            "items": size, "requests": len(latencies), "errors": errors[0],
            "seconds": wall, "throughput_rps": len(latencies) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), **built}


COLUMNS = ["items", "requests", "errors", "throughput_rps", "p50_ms", "p99_ms", "mean_ms",
           "build_seconds", "recall_at_10"]


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0], quick="10k and 100k items, 300 requests",
                               omit=["resume", "runs_dir"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--methods", nargs="+", default=["exact", "faiss-hnsw"],
                        choices=["exact", "faiss-hnsw"])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60, help="per size and method")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.set_defaults(threads=1)  # the server's torch threads
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    sizes, requests, seconds = args.sizes, args.requests, args.seconds
    if args.quick:
        sizes, requests, seconds = [10_000, 100_000], 300, 20
    table = results(results_name("serve", args.quick), keep=False)  # quick never overwrites
    with tempfile.TemporaryDirectory(prefix="recadapt-bench-serve-") as folder:
        run_dir = train_user_encoder(Path(folder))
        for size in sizes:
            for method in args.methods:
                if args.only and method not in args.only:
                    continue
                row = measure(run_dir, size, method, requests, seconds, args.concurrency,
                              args.threads)
                table.rows.append(row)
                print(text_table([row], COLUMNS).splitlines()[-1], flush=True)
    print()
    print(text_table(table.rows, COLUMNS))
    print(f"\nwrote {table.write()}")


if __name__ == "__main__":
    main()
