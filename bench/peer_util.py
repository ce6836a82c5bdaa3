"""peer_util.py - what the Python peers share: their --reps/--budget options
and the timing loop (a warm-up, then samples until reps or the budget)."""
import gc
import time


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
