#!/usr/bin/python3
"""peer_ttsm.py - our own Python binding (python/ttsm, ctypes) measured like
the peers: Manager.load + Model.state_dict() (every tensor a torch.Tensor
through DLPack, no copy), and cache hits through Python (one and two
threads) against ttsm.cache_key() and a bare ctypes call. Timed inside this
process; start-up (interpreter, import torch, import ttsm) is apart. Where
the binding cannot be imported or used it prints one "unavailable" line
saying why, so the report shows "not measured" instead of a number.

Usage: peer_ttsm.py statedict [--reps N] [--budget S] LABEL=PATH ...
       peer_ttsm.py cache --path FILE [--samples N] [--models-dir DIR]
       peer_ttsm.py cuda PATH     (load on cuda:0; time to the first torch.from_dlpack)
       peer_ttsm.py startup
"""
import json
import sys
import threading
import time

from peer_util import parse_reps, repeat


def emit(rec):
    print(json.dumps(rec), flush=True)


def unavailable(what, why):
    emit({"bench": "peer_unavailable", "peer": "ttsm python " + what, "why": why})
    return 0


try:
    import torch  # noqa: F401  (state_dict hands out torch tensors)
    import ttsm
except Exception as e:  # the report says "not measured" with this reason
    IMPORT_ERROR = "%s: %s" % (type(e).__name__, e)
else:
    IMPORT_ERROR = None


def statedict(args):
    reps, budget, args = parse_reps(args)
    for spec in args:
        label, path = spec.split("=", 1)
        count = [0]

        def run():  # the manager is set up and torn down outside the timing
            with ttsm.Manager() as mgr:
                t0 = time.perf_counter_ns()
                with mgr.load("file", model_path=path, device="cpu") as m:
                    sd = m.state_dict()
                    dt = time.perf_counter_ns() - t0
                    count[0] = len(sd)
                    del sd
            return dt
        times = repeat(run, reps, budget)
        emit({"bench": "peer", "peer": "ttsm python state_dict", "label": label,
              "tensors": count[0], "reps": len(times), "median_ns": times[len(times) // 2],
              "min_ns": times[0]})


def _q(v, q):
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def named(models_dir, samples):
    """Hits of a manifest engine by name (chatterbox from the sample store):
    Manager.load() against the same C hit through a bare ctypes call, in
    this process. bench_cache times that C hit without Python."""
    import ctypes
    from ttsm import _lib
    with ttsm.Manager(models_dir=models_dir) as mgr:
        mgr.load("chatterbox", device="cpu").close()
        cfg = _lib.LoadConfig(ctypes.sizeof(_lib.LoadConfig), b"chatterbox", b"tts", None,
                              b"cpu")
        out, err, h = ctypes.c_void_p(), _lib.Error(), mgr._handle
        load, release = ttsm._c.ttsm_load, ttsm._c.ttsm_model_release
        ref, oref, eref = ctypes.byref(cfg), ctypes.byref(out), ctypes.byref(err)
        pc = time.perf_counter_ns
        py, bare, key = [], [], []
        for _ in range(samples // 10):  # warm-up
            mgr.load("chatterbox", device="cpu").close()
        for _ in range(samples):  # taking turns, as in cache()
            t0 = pc()
            m = mgr.load("chatterbox", device="cpu")
            t1 = pc()
            m.close()
            t2 = pc()
            load(h, ref, oref, eref)
            t3 = pc()
            release(out)
            t4 = pc()
            ttsm.cache_key("chatterbox", device="cpu")
            t5 = pc()
            py.append(t1 - t0)
            bare.append(t3 - t2)
            key.append(t5 - t4)
        two = [[], []]

        def hits(dst, start):
            start.wait()
            for _ in range(samples):
                t0 = pc()
                m = mgr.load("chatterbox", device="cpu")
                dst.append(pc() - t0)
                m.close()
        bar = threading.Barrier(2)
        th = threading.Thread(target=hits, args=(two[1], bar))
        th.start()
        hits(two[0], bar)
        th.join()
        st = mgr.stats()
    rec = {"bench": "py_cache_named", "samples": samples, "hits": st.hits,
           "misses": st.misses}
    for name, v in (("hit1", py), ("hit2", two[0] + two[1]), ("ctypes_hit", bare),
                    ("key", key)):
        v.sort()
        rec[name + "_median_ns"] = _q(v, 0.5)
        rec[name + "_p99_ns"] = _q(v, 0.99)
    emit(rec)


def cache(args):
    path, samples, models_dir = None, 50000, None
    while args:
        if args[0] == "--path":
            path, args = args[1], args[2:]
        elif args[0] == "--samples":
            samples, args = int(args[1]), args[2:]
        elif args[0] == "--models-dir":
            models_dir, args = args[1], args[2:]
        else:
            raise SystemExit("peer_ttsm.py cache: unknown option " + args[0])
    if models_dir:
        named(models_dir, samples)
    lib = ttsm._c
    with ttsm.Manager() as mgr:
        mgr.load("file", model_path=path, device="cpu").close()

        def hits(out, n, start=None):
            if start:
                start.wait()
            pc = time.perf_counter_ns
            for _ in range(n):
                t0 = pc()
                m = mgr.load("file", model_path=path, device="cpu")
                out.append(pc() - t0)
                m.close()

        def timed(fn, n):
            out, pc = [], time.perf_counter_ns
            for _ in range(n):
                t0 = pc()
                fn()
                out.append(pc() - t0)
            out.sort()
            return out

        floor = timed(lambda: None, samples)
        ctypes_call = timed(lib.ttsm_version, samples)
        hits([], samples // 10)  # warm-up
        # A hit and its baseline (the key alone) take turns, so other work
        # on the machine disturbs both alike.
        key, one, pc = [], [], time.perf_counter_ns
        for _ in range(samples):
            t0 = pc()
            ttsm.cache_key("file", model_path=path, device="cpu")
            t1 = pc()
            m = mgr.load("file", model_path=path, device="cpu")
            t2 = pc()
            m.close()
            key.append(t1 - t0)
            one.append(t2 - t1)
        key.sort()
        one.sort()
        two = [[], []]
        bar = threading.Barrier(2)
        th = threading.Thread(target=hits, args=(two[1], samples, bar))
        th.start()
        hits(two[0], samples, bar)
        th.join()
        both = sorted(two[0] + two[1])
        st = mgr.stats()
    rec = {"bench": "py_cache", "samples": samples, "hits": st.hits, "misses": st.misses}
    for name, v in (("hit1", one), ("hit2", both), ("key", key), ("ctypes", ctypes_call),
                    ("timer", floor)):
        rec[name + "_median_ns"] = _q(v, 0.5)
        rec[name + "_p99_ns"] = _q(v, 0.99)
    emit(rec)


def cuda(args):
    if not torch.cuda.is_available():
        return unavailable("cuda", "this torch (%s) has no CUDA: torch.cuda.is_available() is "
                           "False" % torch.__version__)
    path = args[0]
    torch.cuda.init()
    with ttsm.Manager() as mgr:
        t0 = time.perf_counter_ns()
        with mgr.load("file", model_path=path, device="cuda:0") as m:
            t1 = time.perf_counter_ns()
            first = next(iter(m.tensors().values()))
            t = torch.from_dlpack(first)
            torch.cuda.synchronize()
            t2 = time.perf_counter_ns()
            emit({"bench": "gpu_dlpack", "load_ns": t1 - t0, "first_from_dlpack_ns": t2 - t1,
                  "device": str(t.device), "torch": torch.__version__})
            del t
    return 0


def main(argv):
    mode = argv[0] if argv else ""
    if mode not in ("statedict", "cache", "cuda", "startup"):
        sys.stderr.write(__doc__)
        return 2
    if IMPORT_ERROR:
        return unavailable(mode, IMPORT_ERROR)
    if mode == "startup":
        return 0
    try:
        {"statedict": statedict, "cache": cache, "cuda": cuda}[mode](argv[1:])
    except Exception as e:  # a binding that is not usable yet: say so, never a number
        return unavailable(mode, "%s: %s" % (type(e).__name__, e))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
