#!/usr/bin/python3
"""bench_pull.py - the Hub client's downloads against the loopback test Hub
(tests/hub/hub_server.py, in this process's threads):

- one file of --big bytes: `ttsm pull` (HEAD, download, SHA-256 while it
  streams, rename, link) against `curl -o` of the same CDN URL, into the same
  file system, interleaved; the ratio of their throughputs; and `curl -o`
  followed by `sha256sum`, which checks what ttsm checks;
- a model of --files files of --file-bytes each: `ttsm pull --jobs 4`
  against `--jobs 1`.

Prints one JSON line per benchmark (bench/run collects them). Standard
library only, plus curl, sha256sum and the ttsm binary."""
import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "hub"))
import hub_server as hs  # noqa: E402

MANIFEST = {
    "schema": 1, "name": "benchpull", "description": "bench/bench_pull.py", "runtime": "pytorch",
    "model_types": ["tts"],
    "capabilities": {"supports_voice_conversion": False, "has_fallback": False,
                     "can_corrupt": False, "requires_special_init": False,
                     "language_selects_model": False, "single_instance": False,
                     "recovery": "none"},
    "devices": ["cpu"], "languages": ["en"], "identity_params": [], "folder": "BenchPull",
    "legacy_folders": [], "default_model": "big",
    "models": [
        {"name": "big", "repos": [{"id": "bench/big"}],
         "components": [{"name": "blob", "kind": "blob", "files": ["big.bin"]}]},
        {"name": "many", "repos": [{"id": "bench/many"}],
         "components": []},
    ],
}


def write_file(path, size, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    block = random.Random(seed).randbytes(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttsm", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--big", type=int, default=1 << 30)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--file-bytes", type=int, default=32 << 20)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    work = os.path.abspath(a.work)
    root, engines = os.path.join(work, "root"), os.path.join(work, "engines")
    os.makedirs(engines, exist_ok=True)
    write_file(os.path.join(root, "models", "bench", "big", "big.bin"), a.big, 1)
    for i in range(a.files):
        write_file(os.path.join(root, "models", "bench", "many", "part%d.bin" % i),
                   a.file_bytes, 10 + i)
    MANIFEST["models"][1]["components"] = [
        {"name": "part%d" % i, "kind": "blob", "files": ["part%d.bin" % i]}
        for i in range(a.files)]
    with open(os.path.join(engines, "benchpull.json"), "w") as f:
        json.dump(MANIFEST, f)
    hub = hs.HubServer(root).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=hub.url, TTSM_ENGINES_PATH=engines,
                   TTSM_MODELS_PATH=os.path.join(work, "no-models"))
        cache = os.path.join(work, "cache")

        def pull(*args):
            shutil.rmtree(cache, ignore_errors=True)
            t0 = time.perf_counter_ns()
            subprocess.run([a.ttsm, "pull", "benchpull", "-q", "--hf-cache", cache, *args],
                           env=env, check=True)
            return time.perf_counter_ns() - t0

        # The CDN URL the Hub redirects to: what both clients download.
        u = urllib.parse.urlsplit(hub.url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("HEAD", "/bench/big/resolve/main/big.bin")
        cdn = c.getresponse().getheader("Location")
        c.close()
        dest = os.path.join(work, "curl.out")

        def curl():
            if os.path.exists(dest):
                os.remove(dest)
            t0 = time.perf_counter_ns()
            subprocess.run(["curl", "-sS", "-f", "-o", dest, cdn], check=True)
            return time.perf_counter_ns() - t0

        def verify():
            # What curl leaves unchecked: the SHA-256 ttsm computes while it streams.
            t0 = time.perf_counter_ns()
            subprocess.run(["sha256sum", dest], check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter_ns() - t0

        curl()  # warm the server's page cache and connection path
        tc, tv, tt = [], [], []
        for _ in range(a.reps):
            tc.append(curl())
            tv.append(verify())
            tt.append(pull("--model", "big"))
        os.remove(dest)
        print(json.dumps({"bench": "download", "bytes": a.big, "reps": a.reps,
                          "curl_median_ns": median(tc), "ttsm_median_ns": median(tt),
                          "curl_best_ns": min(tc), "ttsm_best_ns": min(tt),
                          "curl_sha256sum_median_ns": median([c + v for c, v in zip(tc, tv)]),
                          "cores": os.cpu_count()}))
        sys.stdout.flush()
        ts, tp = [], []
        for _ in range(a.reps):
            ts.append(pull("--model", "many", "--jobs", "1"))
            tp.append(pull("--model", "many", "--jobs", "4"))
        print(json.dumps({"bench": "pull_parallel", "files": a.files, "file_bytes": a.file_bytes,
                          "reps": a.reps, "jobs": 4, "serial_median_ns": median(ts),
                          "parallel_median_ns": median(tp)}))
        shutil.rmtree(cache, ignore_errors=True)
        if hub.errors():
            raise SystemExit("bench_pull: the test Hub failed: %s" % hub.errors()[0])
    finally:
        hub.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
