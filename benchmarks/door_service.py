"""The door as a service against the command line: latency, throughput and cold start.

    python benchmarks/door_service.py [--clients 4] [--requests 50] [--size 640] [--single 20]
        [--precision auto|float32|bfloat16] [--serve '--detect-side 160'] [--cold-runs 1] [--repeat 1]
    FR_DATASETS=../shared/datasets python benchmarks/door_service.py --detection 60 [--size 640]

Starts ``python -m fr_utils.door serve`` on a free port with a fresh database, enrols the
sample cast (first photo of each person), then runs ``--clients`` concurrent clients
(threads, one keep-alive HTTP connection each; first one client alone, ``--single``
verify requests, to time a request nobody waits ahead of) sending ``--requests`` requests each,
first ``POST /verify`` (a photo of a cast person claiming to be them), then
``POST /identify``, with the cast's photos upscaled to ``--size`` pixels (JPEG, quality
90). Prints p50/p95 latency and throughput of each, the service's start-up time, how many
faces each of its encoder calls took (requests waiting together are encoded in one batch), and
the cold start of the ``facedoor`` command: ``verify`` and ``identify`` answered through the
running service (a fresh process that finds it beside the database), then, the service stopped,
a command that fails fast (a missing photo, an unknown name), ``list``, and ``verify`` loading
the model in its own process, with the machine and its load average.
``--detection N``: only MTCNN's time and faces found on N LFW photos enlarged to ``--size``,
eager against ``fr_utils.detect``'s graphs, at several analysis sides and minimum face sizes.
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


def start_service(db: Path, precision: str | None = None, options: list[str] = ()) -> tuple[subprocess.Popen, str, int, float]:
    start = time.perf_counter()
    env = dict(os.environ, **({"FR_ENCODER_PRECISION": precision} if precision else {}))
    proc = subprocess.Popen([sys.executable, "-m", "fr_utils.door", "serve", "--db", str(db), "--port", "0", *options],
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
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


def detection(n: int, size: int) -> None:
    """MTCNN as the ``mtcnn`` package runs it (eager Keras calls) against ``fr_utils.detect``'s graphs
    (``GRAPH_STAGES``), on ``n`` LFW photos (the first photo of people drawn with seed 0) enlarged to
    ``size`` px, analysed at several sides; a smaller side is what a larger minimum face would give
    (side 320 x 20 / F: a minimum face of F px at 320), since ``mtcnn`` 1.0.0 miscounts its pyramid
    for ``min_face_size`` > 20 (its own figures are printed too)."""
    import random

    import numpy as np
    from mtcnn import MTCNN

    import fr_utils.detect as detect

    root = Path(os.environ.get("FR_DATASETS", "")) / "lfw-deepfunneled"
    if not root.is_dir():
        raise SystemExit("--detection needs FR_DATASETS (the folder holding lfw-deepfunneled)")
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    random.Random(0).shuffle(people)
    images = []
    for person in people[:n]:
        with Image.open(sorted((root / person).iterdir())[0]) as img:
            images.append(np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC)))
    eager = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
    graph = MTCNN(stages="face_and_landmarks_detection", device="CPU:0")
    detect._as_graphs(graph)
    for det in (eager, graph):  # warm-up
        detect._detector = det
        detect._faces_in(images[0])
    print(f"MTCNN on {n} LFW photos enlarged to {size}x{size}, median ms per photo ({load()}):")
    print("  analysed at      min face   eager ms  graph ms  faces found (graph)  same boxes eager/graph")
    reference = None
    for side, min_face in ((320, 20), (320, 40), (320, 60), (320, 80), (240, 20), (160, 20), (107, 20), (80, 20)):
        found = {}
        ms = {}
        for label, det in (("eager", eager), ("graph", graph)):
            detect._detector = det
            times, out = [], []
            for img in images:
                t = time.perf_counter()
                out.append(detect._faces_in(img, max_side=side, min_face_size=min_face))
                times.append(time.perf_counter() - t)
            ms[label], found[label] = statistics.median(times) * 1000, out
        same = sum(1 for a, b in zip(found["eager"], found["graph"]) if [f["box"] for f in a] == [f["box"] for f in b])
        with_face = sum(1 for faces in found["graph"] if faces)
        if reference is None:
            reference = found["graph"]
        print(f"  {side:4d} px side   {min_face:4d} px    {ms['eager']:8.0f}  {ms['graph']:8.0f}  {with_face:5d}/{n}"
              f"             {same}/{n}", flush=True)
    detect._detector = graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="requests per client, per endpoint")
    parser.add_argument("--size", type=int, default=640, help="photos upscaled to SIZE x SIZE pixels")
    parser.add_argument("--single", type=int, default=20, help="first, one client alone: SINGLE verify requests")
    parser.add_argument("--repeat", type=int, default=1, help="run the concurrent clients' rounds this many times")
    parser.add_argument("--phase-runs", type=int, default=5, help="runs of one verify request's parts (median)")
    parser.add_argument("--phases-only", action="store_true", help="only the phase-by-phase part")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=None,
                        help="the service's encoder arithmetic (FR_ENCODER_PRECISION; default: as set, else the "
                             "service's own default, auto)")
    parser.add_argument("--serve", default="", help="more 'facedoor serve' options, e.g. '--detect-side 160'")
    parser.add_argument("--cold-runs", type=int, default=1, help="runs of the in-process cold start (median)")
    parser.add_argument("--detection", type=int, default=0, metavar="N",
                        help="only: MTCNN on N LFW photos enlarged to --size, eager against graph, at several "
                             "analysis sides (needs FR_DATASETS)")
    parser.add_argument("--phases-of", type=Path, help=argparse.SUPPRESS)  # the fresh process's own call
    args = parser.parse_args()
    if args.phases_of:
        phases(args.phases_of, args.phase_runs)
        return

    print(machine())
    print(f"at start: {load()}")
    if args.detection:
        detection(args.detection, args.size)
        return
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
        proc, host, port, started = start_service(db, args.precision, args.serve.split())
        try:
            conn = http.client.HTTPConnection(host, port, timeout=600)
            conn.request("GET", "/health?quick=1")
            precision = json.loads(conn.getresponse().read()).get("precision")
            print(f"service ready in {started:.1f} s (interpreter, TensorFlow, model, warm-up); encoder "
                  f"{precision} (asked: {args.precision or os.environ.get('FR_ENCODER_PRECISION') or 'auto'}); "
                  f"options {args.serve!r}")
            for name, shots in list(photos.items()):  # each person's first photo with a face found
                for i, shot in enumerate(shots):
                    status, answer = post(conn, f"/enroll?name={name}", shot)
                    if status == 201:
                        break
                else:
                    print(f"  {name}: no face found in any photo at {args.size} px; left out")
                    del photos[name]
            verify = [(f"/verify?name={name}", shot,
                       lambda s, a: s == 200 and a["decision"] == "OPEN")
                      for name, shots in photos.items() for shot in shots]
            kept = [(path, shot, check) for path, shot, check in verify if check(*post(conn, path, shot))]
            if len(kept) < len(verify):
                print(f"  {len(verify) - len(kept)} of {len(verify)} photos left out (no face found, or "
                      "CLOSED for their own person, at this size)")
            verify = kept
            keep = {id(shot) for _, shot, _ in kept}
            photos = {name: [s for s in shots if id(s) in keep] for name, shots in photos.items()}
            photos = {name: shots for name, shots in photos.items() if shots}
            conn.close()
            identify = [("/identify", shot, (lambda who: lambda s, a: s == 200 and a["name"] == who)(name))
                        for name, shots in photos.items() for shot in shots]
            hammer(host, port, verify, 1, 2)  # warm the connection paths
            if args.single:
                print(f"1 client x {args.single} requests (nobody queued ahead: the time of one request):")
                print(summary("verify", *hammer(host, port, verify, 1, args.single)), flush=True)
            print(f"{args.clients} clients x {args.requests} requests, {args.size}x{args.size} JPEG photos, "
                  f"{len(photos)} people enrolled:")
            for label, jobs in (("verify", verify), ("identify", identify)):
                for _ in range(args.repeat):
                    print(summary(label, *hammer(host, port, jobs, args.clients, args.requests)), flush=True)
            conn = http.client.HTTPConnection(host, port, timeout=600)
            conn.request("GET", "/health")
            batches = json.loads(conn.getresponse().read()).get("encoder_batches")
            conn.close()
            print(f"encoder calls of the service by batch size (faces encoded together): {batches}")
            print(f"after the service runs: {load()}")
            exe = shutil.which("facedoor", path=str(Path(sys.executable).parent)) or shutil.which("facedoor")
            base = [exe] if exe else [sys.executable, "-m", "fr_utils.door"]
            name, shots = next(iter(photos.items()))
            photo = work / "photo.jpg"
            photo.write_bytes(shots[-1])
            for label, argv in [  # the command finds the service beside the database and sends the photo
                ("verify through the service", base + ["--db", str(db), "verify", name, str(photo)]),
                ("identify through the service", base + ["--db", str(db), "identify", str(photo)]),
            ]:
                seconds, code, last = cold(argv, 3)
                print(f"CLI cold start, {label}: {seconds:.2f} s (median of 3, exit {code}) {last[:80]}", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)

        for label, argv, runs in [
            ("fails fast (missing photo)", base + ["--db", str(db), "verify", name, str(work / "missing.jpg")], 3),
            ("fails fast (unknown name)", base + ["--db", str(db), "verify", "Nobody", str(photo)], 3),
            ("list", base + ["--db", str(db), "list"], 3),
            ("verify in-process (no service: loads the model)", base + ["--db", str(db), "verify", name, str(photo)],
             args.cold_runs),
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
