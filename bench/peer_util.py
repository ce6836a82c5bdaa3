"""peer_util.py - what the Python peers share: their --reps/--budget options,
the timing loop (a warm-up, then samples until reps or the budget), and for
time to usable: dropping files from the page cache and the pass over every
byte a first forward pass makes."""
import gc
import json
import os
import time

import numpy as np


def parse_reps(args, reps=5, budget=10.0):
    """Takes leading --reps N / --budget S off args: (reps, budget, rest)."""
    while args[:1] in (["--reps"], ["--budget"]):
        if args[0] == "--reps":
            reps = int(args[1])
        else:
            budget = float(args[1])
        args = args[2:]
    return reps, budget, args


def repeat(fn, reps, budget_s):
    """Times fn() up to reps times after a warm-up (a first run slower than
    0.3 s counts as a sample instead), stopping early once budget_s is spent.
    fn may return the nanoseconds it measured itself (to leave set-up out);
    otherwise the whole call is timed. Returns the sorted samples."""
    times, spent = [], 0
    for r in range(reps + 1):
        gc.collect()
        t0 = time.perf_counter_ns()
        own = fn()
        dt = own if own is not None else time.perf_counter_ns() - t0
        spent += dt
        if r or dt > 3e8:
            times.append(dt)
        if len(times) >= reps or (times and spent > budget_s * 1e9):
            break
    return sorted(times)


def drop_cache(paths):
    """Drops `paths` from the page cache: the whole cache as root (after a
    sync), else each file with posix_fadvise(DONTNEED). Returns how."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        pass
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return "fadvise"


def touch(arr):
    """Reads every byte of a NumPy array once (eight at a time where the
    size allows), as bench_usable.c does; returns a sum to keep."""
    b = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    n = b.size - b.size % 8
    s = int(b[:n].view(np.uint64).sum(dtype=np.uint64)) if n else 0
    return s + int(b[n:].sum())


def usable(run, paths, reps, cold):
    """Times run() (which loads and touches) reps times, dropping `paths`
    from the page cache before each when cold (after one warm-up when not).
    Returns (sorted samples, how the cache was dropped)."""
    how = "warm"
    if not cold:
        run()
    times = []
    for _ in range(reps):
        if cold:
            how = drop_cache(paths)
        gc.collect()
        t0 = time.perf_counter_ns()
        run()
        times.append(time.perf_counter_ns() - t0)
    return sorted(times), how


def usable_main(args, peer, tensors_of):
    """The time-to-usable run of a peer: [--reps N] [--cold] LABEL=PATH[,PATH...]
    ...; one JSON line per label. tensors_of(path) yields the file's tensors as
    NumPy arrays (loaded the peer's way, kept alive while they are touched),
    or returns None for a file the peer has no reader for, whose bytes are
    then read whole."""
    reps, cold = 5, False
    while args[:1] in (["--reps"], ["--cold"]):
        if args[0] == "--reps":
            reps, args = int(args[1]), args[2:]
        else:
            cold, args = True, args[1:]
    for spec in args:
        label, paths = spec.split("=", 1)
        paths = paths.split(",")
        count = []

        def run():
            s, n = 0, 0
            for p in paths:
                arrays = tensors_of(p)
                if arrays is None:
                    with open(p, "rb") as f:
                        s += touch(np.frombuffer(f.read(), dtype=np.uint8))
                    continue
                for a in arrays:
                    s += touch(a)
                    n += 1
                del arrays
            count[:] = [n]
            return s
        times, how = usable(run, paths, reps, cold)
        print(json.dumps({"bench": "usable_peer", "peer": peer, "label": label,
                          "cache": "cold" if cold else "warm", "drop": how,
                          "tensors": count[0],
                          "file_bytes": sum(os.path.getsize(p) for p in paths),
                          "reps": len(times), "median_ns": times[len(times) // 2],
                          "min_ns": times[0]}), flush=True)
    return 0
