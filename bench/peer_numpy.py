#!/usr/bin/python3
"""peer_numpy.py - a NumPy safetensors reader, the pattern the safetensors
NumPy API follows: the 8-byte length, the JSON header, numpy.memmap of the
file and one ndarray view per tensor (sharded: the index, then each shard).
`open` times that until every tensor is a usable view; `materialise` copies
every tensor into owned arrays; `usable` opens the views and reads every
byte once (time to usable; a PATH may be several files joined by commas,
the other files read whole). Timed inside this process (start-up apart).

Usage: peer_numpy.py open|materialise [--reps N] [--budget S] LABEL=PATH ...
       peer_numpy.py usable [--reps N] [--cold] LABEL=PATH[,PATH...] ...
       peer_numpy.py startup
"""
import json
import os
import struct
import sys
import time

import numpy as np

from peer_util import usable_main

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
          "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_file(path, out):
    with open(path, "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(hl))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + hl
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = mm[base + a:base + b].view(DTYPES[t["dtype"]]).reshape(t["shape"])
    return mm


def read(path):
    out, maps = {}, []
    if path.endswith(".index.json"):
        with open(path) as f:
            idx = json.load(f)
        folder = os.path.dirname(path)
        for shard in sorted(set(idx["weight_map"].values())):
            maps.append(read_file(os.path.join(folder, shard), out))
    else:
        maps.append(read_file(path, out))
    return out, maps


def files_bytes(path):
    if path.endswith(".index.json"):
        with open(path) as f:
            idx = json.load(f)
        folder = os.path.dirname(path)
        return sum(os.path.getsize(os.path.join(folder, s))
                   for s in set(idx["weight_map"].values()))
    return os.path.getsize(path)


def numpy_tensors(p):
    """The views of a safetensors file or index, through their mappings."""
    if not (p.endswith(".safetensors") or p.endswith(".index.json")):
        return None

    def views():
        out, maps = read(p)  # noqa: F841 (the mappings stay open while touched)
        yield from out.values()
    return views()


def main(argv):
    if argv[:1] == ["startup"]:
        return 0
    if argv[:1] == ["usable"]:
        return usable_main(argv[1:], "numpy", numpy_tensors)
    if not argv or argv[0] not in ("open", "materialise"):
        sys.stderr.write(__doc__)
        return 2
    mode, args, reps, budget = argv[0], argv[1:], 7, 10.0
    while args[:1] in (["--reps"], ["--budget"]):
        if args[0] == "--reps":
            reps = int(args[1])
        else:
            budget = float(args[1])
        args = args[2:]
    for spec in args:
        label, path = spec.split("=", 1)
        times, nbytes, count, spent = [], 0, 0, 0
        for r in range(reps + 1):  # the first is a warm-up unless slower than 0.3 s
            t0 = time.perf_counter_ns()
            out, maps = read(path)
            if mode == "materialise":
                owned = [np.array(v) for v in out.values()]
                nbytes = sum(a.nbytes for a in owned)
                del owned
            dt = time.perf_counter_ns() - t0
            count = len(out)
            del out, maps
            spent += dt
            if r or dt > 3e8:
                times.append(dt)
            if len(times) >= reps or (times and spent > budget * 1e9):
                break
        times.sort()
        rec = {"bench": "peer", "peer": "numpy " + mode, "label": label, "tensors": count,
               "file_bytes": files_bytes(path), "reps": len(times),
               "median_ns": times[len(times) // 2],
               "min_ns": times[0]}
        if mode == "materialise":
            rec["bytes"] = nbytes
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
