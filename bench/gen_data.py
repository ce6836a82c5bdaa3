#!/usr/bin/python3
"""gen_data.py - writes the checkpoints bench/run measures: safetensors
(single and sharded), GGUF v3 and PyTorch zip files of N F32 tensors over B
bytes. Written by hand from the format facts (standard library only), so
tensor data can be left as holes: --sparse files take no disk and read as
zeros, which is enough where only headers are read (opening). Without
--sparse the data is real bytes (a repeated pseudo-random block).

Usage: gen_data.py FORMAT OUT --tensors N --bytes B [--sparse] [--shards K]
       FORMAT: safetensors | sharded (OUT is a folder) | gguf | torch
       gen_data.py chatterbox ROOT --bytes B --mini STORE
"""
import argparse
import json
import os
import random
import shutil
import struct
import sys
import zlib

ALIGN = 64  # data of every tensor starts 64-aligned in every format written here
CHUNK = 8 << 20


def _block():
    rnd = random.Random(1234)
    return bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * (CHUNK >> 16)


def _block_ref(cache=[]):
    """The data block (built once per process; the list is the cache)."""
    if not cache:
        cache.append(_block())
    return cache[0]


def write_data(f, nbytes):
    """Writes nbytes of real tensor data at f's position."""
    block = _block_ref()
    while nbytes > 0:
        n = min(nbytes, CHUNK)
        f.write(block[:n])
        nbytes -= n


def layout(n, total):
    """Per-tensor byte size: total split over n tensors, multiple of ALIGN."""
    per = max(ALIGN, total // n // ALIGN * ALIGN)
    return per


def names(n, prefix="model"):
    # Layer-like names, as real checkpoints have (and the same length order).
    return ["%s.layers.%d.mlp.weight" % (prefix, i) for i in range(n)]


# ---- safetensors ---------------------------------------------------------

def safetensors(path, tensors, sparse):
    """tensors: [(name, nbytes)] F32 1-D."""
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for name, nb in tensors:
        hdr[name] = {"dtype": "F32", "shape": [nb // 4], "data_offsets": [off, off + nb]}
        off += nb
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % ALIGN)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        if sparse:
            f.truncate(8 + len(h) + off)
        else:
            for _, nb in tensors:
                write_data(f, nb)
    return off


def sharded(folder, tensors, sparse, shards):
    os.makedirs(folder, exist_ok=True)
    per = (len(tensors) + shards - 1) // shards
    weight_map, total = {}, 0
    for k in range(shards):
        part = tensors[k * per:(k + 1) * per]
        fname = "model-%05d-of-%05d.safetensors" % (k + 1, shards)
        total += safetensors(os.path.join(folder, fname), part, sparse)
        for name, _ in part:
            weight_map[name] = fname
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)


# ---- GGUF v3 -------------------------------------------------------------

def _gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(path, tensors, sparse):
    kv = [("general.architecture", 8, _gstr("bench")),
          ("general.alignment", 4, struct.pack("<I", ALIGN))]
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for key, typ, val in kv:
        out += [_gstr(key), struct.pack("<I", typ), val]
    off = 0
    for name, nb in tensors:
        out += [_gstr(name), struct.pack("<IQIQ", 1, nb // 4, 0, off)]  # 1-D, F32
        off += nb
    head = b"".join(out)
    head += b"\0" * (-len(head) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        if sparse:
            f.truncate(len(head) + off)
        else:
            for _, nb in tensors:
                write_data(f, nb)


# ---- PyTorch zip (torch.save's layout: <stem>/data.pkl, <stem>/data/<key>,
# <stem>/version; stored members, data 64-aligned; ZIP64 where needed) -----

def _pint(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(1 << 31) <= v < (1 << 31):
        return b"J" + struct.pack("<i", v)
    b = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(b)]) + b


def _pstr(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def torch_pickle(tensors):
    """An OrderedDict of _rebuild_tensor_v2(storage, 0, (n,), (1,), False,
    OrderedDict()), protocol 2, as torch.save writes it (without memo)."""
    od = b"ccollections\nOrderedDict\n)R"
    out = [b"\x80\x02", od]
    for i, (name, nb) in enumerate(tensors):
        if i % 1000 == 0:
            out.append(b"(")
        n = nb // 4
        out += [_pstr(name), b"ctorch._utils\n_rebuild_tensor_v2\n(",
                b"(", _pstr("storage"), b"ctorch\nFloatStorage\n", _pstr(str(i)), _pstr("cpu"),
                _pint(n), b"tQ", _pint(0), _pint(n), b"\x85", _pint(1), b"\x85", b"\x89", od,
                b"tR"]
        if i % 1000 == 999 or i == len(tensors) - 1:
            out.append(b"u")
    out.append(b".")
    return b"".join(out)


def torch_zip(path, tensors, sparse):
    stem = os.path.splitext(os.path.basename(path))[0] or "archive"
    members = [(stem + "/data.pkl", torch_pickle(tensors), None)]
    for i, (_, nb) in enumerate(tensors):
        members.append((stem + "/data/%d" % i, None, nb))
    members.append((stem + "/version", b"3\n", None))
    crc_zero = {}
    central = []
    with open(path, "wb") as f:
        for name, data, nb in members:
            bname = name.encode()
            off = f.tell()
            size = len(data) if data is not None else nb
            if data is not None:
                crc = zlib.crc32(data)
            elif sparse:
                if nb not in crc_zero:
                    c, left, z = 0, nb, bytes(min(nb, CHUNK))
                    while left:
                        c = zlib.crc32(z[:min(left, CHUNK)], c)
                        left -= min(left, CHUNK)
                    crc_zero[nb] = c
                crc = crc_zero[nb]
            else:
                crc = None  # computed below, patched into the local header
            pad = -(off + 30 + len(bname) + 4) % ALIGN
            extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # torch's "FB" padding
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0x21, crc or 0, size,
                                size, len(bname), len(extra)) + bname + extra)
            if data is not None:
                f.write(data)
            elif sparse:
                f.seek(nb, os.SEEK_CUR)
            else:
                c, left, blk = 0, nb, _block_ref()
                while left:
                    n = min(left, CHUNK)
                    f.write(blk[:n])
                    c = zlib.crc32(blk[:n], c)
                    left -= n
                crc = c
                end = f.tell()
                f.seek(off + 14)
                f.write(struct.pack("<I", crc))
                f.seek(end)
            central.append((bname, crc, size, off))
        cd_off = f.tell()
        for bname, crc, size, off in central:
            z64 = off >= 0xFFFFFFFF
            extra = struct.pack("<HHQ", 1, 8, off) if z64 else b""
            f.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45 if z64 else 20,
                                45 if z64 else 20, 0, 0, 0, 0x21, crc, size, size, len(bname),
                                len(extra), 0, 0, 0, 0, 0xFFFFFFFF if z64 else off) +
                    bname + extra)
        cd_end = f.tell()
        n, cd_size = len(central), cd_end - cd_off
        if n >= 0xFFFF or cd_off >= 0xFFFFFFFF or cd_size >= 0xFFFFFFFF:
            f.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size,
                                cd_off))
            f.write(struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1))
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                                min(cd_size, 0xFFFFFFFF), min(cd_off, 0xFFFFFFFF), 0))
        else:
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_off, 0))


# ---- a ChatterBox-shaped store -------------------------------------------
# The real English ChatterBox (ResembleAI/chatterbox) is about 1 GB over
# t3_cfg, s3gen and ve. Tensor counts are ESTIMATES from the architectures
# (t3: a 30-layer Llama with 9 tensors a layer plus embeddings and heads;
# s3gen: flow-matching encoder/decoder plus a HiFi-GAN vocoder with weight
# norm, many small convolutions; ve: a 3-layer LSTM and a projection), and
# the byte shares (t3 ~70%, s3gen ~29%, ve ~0.6%) likewise.
CHATTERBOX = [("t3_cfg.safetensors", 293, 0.704), ("s3gen.safetensors", 2462, 0.290),
              ("ve.safetensors", 14, 0.006)]


def chatterbox(root, total, mini):
    dst = os.path.join(root, "TTS", "chatterbox", "English")
    os.makedirs(dst, exist_ok=True)
    src = os.path.join(mini, "comfy", "TTS", "chatterbox", "English")
    for name in ("tokenizer.json", "conds.pt"):  # small files: the miniature store's
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    for fname, n, share in CHATTERBOX:
        stem = fname.split(".")[0]
        per = layout(n, int(total * share))
        safetensors(os.path.join(dst, fname),
                    [("%s.layers.%d.weight" % (stem, i), per) for i in range(n)], False)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("format", choices=["safetensors", "sharded", "gguf", "torch", "chatterbox"])
    ap.add_argument("out")
    ap.add_argument("--tensors", type=int, default=1000)
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--sparse", action="store_true")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--mini", help="the miniature store (gen_store.py) for chatterbox")
    a = ap.parse_args(argv)
    if a.format == "chatterbox":
        chatterbox(a.out, a.bytes, a.mini)
        return 0
    per = layout(a.tensors, a.bytes)
    tensors = [(n, per) for n in names(a.tensors)]
    if a.format == "safetensors":
        safetensors(a.out, tensors, a.sparse)
    elif a.format == "sharded":
        sharded(a.out, tensors, a.sparse, a.shards)
    elif a.format == "gguf":
        gguf(a.out, tensors, a.sparse)
    else:
        torch_zip(a.out, tensors, a.sparse)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
