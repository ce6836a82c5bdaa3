#!/usr/bin/python3
"""peer_torch.py - the PyTorch peer: torch.load of .pt files to usable
tensors, with and without weights_only, timed inside this process (the
interpreter and `import torch` are not counted; bench/run times them apart).
Also writes the .pt twin of a safetensors file (the same weights).

Usage: peer_torch.py load [--reps N] [--budget S] LABEL=PATH ...   (JSON lines)
       peer_torch.py usable [--reps N] [--cold] LABEL=PATH[,PATH...] ...
       (torch.load of every .pt, then every byte of every tensor read once;
       other files are read whole: time to usable)
       peer_torch.py save SRC.safetensors OUT.pt
       peer_torch.py startup                         (imports, then exits)
"""
import collections
import json
import os
import struct
import sys

import numpy as np
import torch

from peer_util import parse_reps, repeat, usable_main


def load(args):
    reps, budget, args = parse_reps(args)
    for spec in args:
        label, path = spec.split("=", 1)
        for wo in (False, True):
            count = []

            def run():
                sd = torch.load(path, weights_only=wo)
                count[:] = [len(sd)]
            times = repeat(run, reps, budget)
            n, count = len(times), count[0]
            print(json.dumps({"bench": "peer", "peer": "torch.load" + (" weights_only" if wo
                                                                       else ""),
                              "label": label, "tensors": count,
                              "file_bytes": os.path.getsize(path), "reps": n,
                              "median_ns": times[len(times) // 2], "min_ns": times[0]}),
                  flush=True)


def torch_tensors(p):
    """torch.load(weights_only=True) of a .pt, its tensors as byte arrays."""
    if not p.endswith(".pt"):
        return None

    def arrays():
        sd = torch.load(p, weights_only=True)
        for v in (sd.values() if isinstance(sd, dict) else []):
            if isinstance(v, torch.Tensor):
                yield v.contiguous().view(-1).view(torch.uint8).numpy()
    return arrays()


def save(src, out):
    """The same weights as `src` (a safetensors file), saved by torch.save."""
    with open(src, "rb") as f:
        (hl,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(hl))
    mm = np.memmap(src, dtype=np.uint8, mode="r")
    sd = collections.OrderedDict()
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.array(mm[8 + hl + a:8 + hl + b]).view(np.float32).reshape(t["shape"])
        sd[name] = torch.from_numpy(arr)
    torch.save(sd, out)


def main(argv):
    if argv[:1] == ["startup"]:
        return 0
    if argv[:1] == ["load"]:
        load(argv[1:])
        return 0
    if argv[:1] == ["usable"]:
        usable_main(argv[1:], "torch.load weights_only", torch_tensors)
        return 0
    if argv[:1] == ["save"] and len(argv) == 3:
        save(argv[1], argv[2])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
