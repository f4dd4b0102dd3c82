"""The door as a service against the command line: latency, throughput and cold start.

    python benchmarks/door_service.py [--clients 4] [--requests 50] [--size 640] [--single 20]

Starts ``python -m fr_utils.door serve`` on a free port with a fresh database, enrols the
sample cast (first photo of each person), then runs ``--clients`` concurrent clients
(threads, one keep-alive HTTP connection each; first one client alone, ``--single``
verify requests, to time a request nobody waits ahead of) sending ``--requests`` requests each,
first ``POST /verify`` (a photo of a cast person claiming to be them), then
``POST /identify``, with the cast's photos upscaled to ``--size`` pixels (JPEG, quality
90). Prints p50/p95 latency and throughput of each, the service's start-up time, and the
cold start of the ``facedoor`` command: a command that fails fast (a missing photo) and a
real encoding one (``facedoor verify``), with the machine and its load average.
Then, in a fresh process, where the cold start of an encoding command goes (TensorFlow
import, MTCNN build, model build and weights, first model call, first detection) and
where one verify request of a ``--size`` photo goes (decode, detection, crop, encoder,
database), each the median of ``--phase-runs`` runs (``--phases-only``: only this part).
Asserts nothing; checks that every answer was right.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _machine import machine  # noqa: E402

from PIL import Image  # noqa: E402

from fr_utils.data import sample_cast  # noqa: E402


def upscaled(path: Path, size: int) -> bytes:
    """The photo resized to size x size, as JPEG bytes."""
    with Image.open(path) as img:
        big = img.convert("RGB").resize((size, size), Image.LANCZOS)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def start_service(db: Path) -> tuple[subprocess.Popen, str, int, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fr_utils.door", "serve", "--db", str(db), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    for line in proc.stderr:
        match = re.search(r"serving http://([\d.]+):(\d+)/", line)
        if match:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, match.group(1), int(match.group(2)), time.perf_counter() - start
    raise SystemExit(f"the service did not start (exit {proc.wait()})")


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, dict]:
    conn.request("POST", path, body=body, headers={"Content-Type": "image/jpeg"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def hammer(host: str, port: int, jobs: list[tuple[str, bytes, object]], clients: int, per_client: int):
    """``clients`` threads x ``per_client`` requests, cycling through ``jobs`` (path, body, check).
    Returns (latencies in s, wall seconds, wrong answers)."""
    latencies: list[float] = []
    wrong: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        barrier.wait()
        for i in range(per_client):
            path, body, check = jobs[(k * per_client + i) % len(jobs)]
            t = time.perf_counter()
            status, answer = post(conn, path, body)
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                if not check(status, answer):
                    wrong.append((path, status, answer))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start, wrong


def summary(name: str, latencies: list[float], wall: float, wrong: list) -> str:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return (f"{name:9s} {len(latencies)} requests: p50 {statistics.median(latencies):.3f} s, p95 {q[94]:.3f} s, "
            f"max {max(latencies):.3f} s; {len(latencies) / wall:.2f} requests/s ({wall:.1f} s); "
            f"wrong answers: {len(wrong)}")


def cold(argv: list[str], runs: int) -> tuple[float, int, str]:
    """Median wall seconds of ``argv`` run ``runs`` times, its exit code and last stderr line."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - t)
    return statistics.median(times), done.returncode, (done.stderr.strip().splitlines() or [""])[-1]


def phases(photo: Path, runs: int) -> None:
    """Print where a fresh process spends its time to encode ``photo``, then one verify request's parts."""
    t0 = last = time.perf_counter()

    def mark(what: str) -> None:
        nonlocal last
        now = time.perf_counter()
        print(f"  {what:44s} {now - last:6.2f} s   (from the start {now - t0:6.2f} s)", flush=True)
        last = now

    print(f"cold start of an encoding command, phase by phase ({load()}):")
    import numpy as np
    import tensorflow  # noqa: F401

    mark("import numpy, TensorFlow")
    from fr_utils.detect import _faces_in, get_detector

    get_detector()
    mark("MTCNN build")
    from fr_utils.weights import load_facenet

    model = load_facenet()
    mark("encoder: sha256 check, Keras build, weights")
    from fr_utils.encoding import _folded, _model_input, inference_function, quick_start, standardization

    quick_start()  # as the facedoor command does
    run = inference_function(model)
    run(np.zeros((1, *model.input_shape[1:]), np.float32))
    mark("encoder: trace + first call (quick start)")
    from fr_utils.align import _cut_box
    from fr_utils.database import FaceDatabase
    from fr_utils.images import as_rgb_array

    data = photo.read_bytes()
    _faces_in(as_rgb_array(data))
    mark("first detection (MTCNN's own tracing)")
    run = _folded(model)
    run(np.zeros((1, *model.input_shape[1:]), np.float32))
    mark("(the service: weights folded + first call)")
    from fr_utils.weights import loaded

    loaded(model).inference = run  # the service's graph from here on

    work = Path(tempfile.mkdtemp(prefix="door-phases-"))
    try:
        db = FaceDatabase(work / "door.db", model, create=True)
        db.enroll("person", data)
        size, standardize = int(model.input_shape[1]), standardization(model)
        parts: dict[str, list[float]] = {k: [] for k in ("decode", "detect", "crop", "encode", "verify")}
        for _ in range(runs):
            t = time.perf_counter()
            img = as_rgb_array(data)
            t1 = time.perf_counter()
            face = _faces_in(img)[0]
            t2 = time.perf_counter()
            x = _model_input(_cut_box(img, face, size=size), size, standardize)[None]
            t3 = time.perf_counter()
            run(x)
            t4 = time.perf_counter()
            db.verify(data, "person")
            t5 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                parts[key].append(dt)
        med = {k: statistics.median(v) for k, v in parts.items()}
        h, w = img.shape[:2]
        print(f"one verify request of a {w}x{h} photo, in process, median of {runs} ({load()}):")
        for key in ("decode", "detect", "crop", "encode"):
            print(f"  {key:8s} {med[key] * 1000:7.1f} ms")
        rest = med["verify"] - sum(med[k] for k in ("decode", "detect", "crop", "encode"))
        print(f"  database and the rest {rest * 1000:7.1f} ms   (FaceDatabase.verify in all: {med['verify'] * 1000:.1f} ms)")
        db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="requests per client, per endpoint")
    parser.add_argument("--size", type=int, default=640, help="photos upscaled to SIZE x SIZE pixels")
    parser.add_argument("--single", type=int, default=20, help="first, one client alone: SINGLE verify requests")
    parser.add_argument("--phase-runs", type=int, default=5, help="runs of one verify request's parts (median)")
    parser.add_argument("--phases-only", action="store_true", help="only the phase-by-phase part")
    parser.add_argument("--phases-of", type=Path, help=argparse.SUPPRESS)  # the fresh process's own call
    args = parser.parse_args()
    if args.phases_of:
        phases(args.phases_of, args.phase_runs)
        return

    print(machine())
    print(f"at start: {load()}")
    cast = sample_cast()
    photos = {name: [upscaled(p, args.size) for p in paths] for name, paths in sorted(cast.items())}
    work = Path(tempfile.mkdtemp(prefix="door-service-"))
    if args.phases_only:
        photo = work / "photo.jpg"
        photo.write_bytes(next(iter(photos.values()))[-1])
        subprocess.run([sys.executable, __file__, "--phases-of", str(photo), "--phase-runs", str(args.phase_runs)],
                       cwd=REPO, check=False)
        shutil.rmtree(work, ignore_errors=True)
        return
    try:
        db = work / "door.db"
        proc, host, port, started = start_service(db)
        print(f"service ready in {started:.1f} s (interpreter, TensorFlow, model, warm-up)")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=600)
            for name, shots in photos.items():
                status, answer = post(conn, f"/enroll?name={name}", shots[0])
                assert status == 201, answer
            conn.close()
            verify = [(f"/verify?name={name}", shot,
                       lambda s, a: s == 200 and a["decision"] == "OPEN")
                      for name, shots in photos.items() for shot in shots]
            identify = [("/identify", shot, (lambda who: lambda s, a: s == 200 and a["name"] == who)(name))
                        for name, shots in photos.items() for shot in shots]
            hammer(host, port, verify, 1, 2)  # warm the connection paths
            if args.single:
                print(f"1 client x {args.single} requests (nobody queued ahead: the time of one request):")
                print(summary("verify", *hammer(host, port, verify, 1, args.single)), flush=True)
            print(f"{args.clients} clients x {args.requests} requests, {args.size}x{args.size} JPEG photos, "
                  f"{len(photos)} people enrolled:")
            for label, jobs in (("verify", verify), ("identify", identify)):
                print(summary(label, *hammer(host, port, jobs, args.clients, args.requests)), flush=True)
            print(f"after the service runs: {load()}")
        finally:
            proc.terminate()
            proc.wait(timeout=60)

        exe = shutil.which("facedoor", path=str(Path(sys.executable).parent)) or shutil.which("facedoor")
        base = [exe] if exe else [sys.executable, "-m", "fr_utils.door"]
        name, shots = next(iter(photos.items()))
        photo = work / "photo.jpg"
        photo.write_bytes(shots[-1])
        for label, argv, runs in [
            ("fails fast (missing photo)", base + ["--db", str(db), "verify", name, str(work / "missing.jpg")], 3),
            ("fails fast (unknown name)", base + ["--db", str(db), "verify", "Nobody", str(photo)], 3),
            ("list", base + ["--db", str(db), "list"], 3),
            ("verify (encodes a photo)", base + ["--db", str(db), "verify", name, str(photo)], 1),
        ]:
            seconds, code, last = cold(argv, runs)
            print(f"CLI cold start, {label}: {seconds:.2f} s (median of {runs}, exit {code}) {last[:80]}", flush=True)
        subprocess.run([sys.executable, __file__, "--phases-of", str(photo), "--phase-runs", str(args.phase_runs)],
                       cwd=REPO, check=False)
        print(f"at the end: {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
