"""An independent reading of safetensors files with the standard library only,
compared with `ttsm inspect --json --tensors`: every third-party file and every
hand-made fixture. Valid files must agree on names, dtypes, shapes, absolute
data offsets, sizes, order and metadata; invalid ones must be rejected by
ttsm with exit code 6 and the rule the independent reader found."""

import json
import os
import struct
import subprocess
import tempfile
import unittest

TTSM = os.environ.get("TTSM", "ttsm")
SRC = os.environ.get("TTSM_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
THIRD = os.path.join(SRC, "tests", "data", "third_party")
FIXTURES = os.path.join(SRC, "tests", "fixtures", "safetensors")

BITS = {"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
        "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "C64": 64,
        "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6}


class Invalid(Exception):
    """`rule` is the ttsm rule text this violation must be reported under."""

    def __init__(self, rule):
        super().__init__(rule)
        self.rule = rule


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, blob):
    with open(path, "wb") as f:
        f.write(blob)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise Invalid("duplicate key")
    return dict(pairs)


def is_uint(v):
    return type(v) is int and v >= 0


def read_safetensors(path):
    """Returns (tensors, metadata): tensors as (name, dtype, shape, absolute
    offset, nbytes) in data order, metadata as a dict of str."""
    blob = read_bytes(path)
    if len(blob) < 8:
        raise Invalid("file too small")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > 100_000_000:
        raise Invalid("header too large")
    if n > len(blob) - 8:
        raise Invalid("header length exceeds file")
    if n < 2:
        raise Invalid("header too small")
    try:
        text = blob[8:8 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("header not UTF-8")
    try:
        header = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError:
        raise Invalid("invalid JSON header")
    if "\0" in "".join(header):  # NUL in a key: the C reader's JSON parser refuses it
        raise Invalid("invalid JSON header")
    meta = header.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise Invalid("bad __metadata__")
    entries = []
    for name, e in header.items():
        if not isinstance(e, dict):
            raise Invalid("bad tensor entry")
        if set(e) - {"dtype", "shape", "data_offsets"}:
            raise Invalid("unexpected field")
        if set(e) != {"dtype", "shape", "data_offsets"}:
            raise Invalid("missing field")
        if not isinstance(e["dtype"], str):
            raise Invalid("bad dtype")
        if e["dtype"] not in BITS:
            raise Invalid("unknown dtype")
        shape = e["shape"]
        if not isinstance(shape, list):
            raise Invalid("bad shape")
        if len(shape) > 32:
            raise Invalid("rank too large")
        count = 1
        for d in shape:
            if not is_uint(d):
                raise Invalid("bad dimension")
            count *= d
            if count > 2**63 - 1:
                raise Invalid("element count overflows")
        offs = e["data_offsets"]
        if not (isinstance(offs, list) and len(offs) == 2 and all(is_uint(o) for o in offs)
                and all(o < 2**63 for o in offs)):
            raise Invalid("bad data_offsets")
        if offs[1] < offs[0]:
            raise Invalid("reversed data_offsets")
        bits = count * BITS[e["dtype"]]
        if bits >= 2**64:
            raise Invalid("byte size overflows")
        if bits % 8:
            raise Invalid("misaligned sub-byte tensor")
        if offs[1] - offs[0] != bits // 8:
            raise Invalid("size mismatch")
        entries.append((offs[0], offs[1], name, e["dtype"], shape))
    entries.sort(key=lambda x: (x[0], x[1], x[2].encode()))
    pos = 0
    for begin, end, name, _, _ in entries:
        if begin < pos:
            raise Invalid("overlapping tensors")
        if begin > pos:
            raise Invalid("gap in data section")
        pos = end
    data = len(blob) - 8 - n
    if pos > data:
        raise Invalid("data beyond end of file")
    if pos < data:
        raise Invalid("trailing bytes")
    if any(name == "" for _, _, name, _, _ in entries):
        raise Invalid("bad tensor name")
    tensors = [(name, dt, shape, 8 + n + b, e - b) for b, e, name, dt, shape in entries]
    return tensors, meta or {}


def inspect(path, *extra):
    p = subprocess.run([TTSM, "inspect", "--json", "--tensors", path, *extra],
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


class IndependentReading(unittest.TestCase):
    def compare(self, path):
        """@return True when the file is valid (and agreed on)."""
        try:
            want, meta = read_safetensors(path)
        except Invalid as e:
            rc, out, err = inspect(path)
            self.assertEqual(rc, 6, f"{path}: ttsm accepted a file the independent reader "
                                    f"rejects ({e.rule}); stderr: {err}")
            self.assertIn(f": {e.rule}: ", err, path)
            self.assertEqual(out, "")
            return False
        for io in ("mmap", "read"):
            rc, out, err = inspect(path, "--io", io)
            self.assertEqual(rc, 0, f"{path}: {err}")
            d = json.loads(out)
            self.assertEqual(d["format"], "safetensors")
            self.assertEqual(d["io_mode"], io)
            self.assertEqual(d["files"], [{"path": path, "size": os.path.getsize(path)}])
            got = [(t["name"], t["dtype"], t["shape"], t["offset"], t["nbytes"])
                   for t in d["tensors"]]
            self.assertEqual(got, want, path)
            self.assertEqual(d["tensor_count"], len(want))
            self.assertEqual(d["total_bytes"], sum(t[4] for t in want))
            self.assertTrue(all(t["file"] == 0 and t["storage_offset"] == 0 and t["contiguous"]
                                for t in d["tensors"]))
            self.assertEqual({k: v["value"] for k, v in d["metadata"].items()}, meta)
            self.assertTrue(all(v["type"] == "str" for v in d["metadata"].values()))
        return True

    def test_third_party_files(self):
        folder = os.path.join(THIRD, "safetensors")
        names = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
        verdicts = {}
        for name in names:
            with self.subTest(file=name):
                verdicts[name] = self.compare(os.path.join(folder, name))
        self.assertGreaterEqual(len(names), 5)
        self.assertFalse(verdicts["safetensors-cpp_abuse_attempt_1.safetensors"])
        self.assertTrue(verdicts["burn_mnist.safetensors"])
        self.assertEqual(sum(verdicts.values()), len(names) - 1)

    def test_abuse_attempt_reason(self):
        path = os.path.join(THIRD, "safetensors", "safetensors-cpp_abuse_attempt_1.safetensors")
        rc, _, err = inspect(path)
        self.assertEqual(rc, 6)
        self.assertIn("header length exceeds file: header length 1000 (offset 0)", err)

    def test_hand_made_fixtures(self):
        names = sorted(f for f in os.listdir(FIXTURES) if f.endswith(".safetensors"))
        good = 0
        for name in names:
            with self.subTest(file=name):
                ok = self.compare(os.path.join(FIXTURES, name))
                self.assertEqual(ok, name.startswith("ok_"), name)
                good += ok
        self.assertGreaterEqual(len(names) - good, 30)


class ShardedIndex(unittest.TestCase):
    """The third-party index files, with stand-in shards built from their
    weight_map by this script."""

    def test_third_party_indexes(self):
        folder = os.path.join(THIRD, "safetensors_index")
        for name in sorted(os.listdir(folder)):
            with self.subTest(file=name):
                src = os.path.join(folder, name)
                index = json.loads(read_bytes(src))
                shards = sorted(set(index["weight_map"].values()))
                rc, _, err = inspect(src)
                self.assertEqual(rc, 3, err)
                self.assertIn(f"missing shard: '{shards[0]}' not found", err)
                with tempfile.TemporaryDirectory() as tmp:
                    dst = os.path.join(tmp, name)
                    write_bytes(dst, read_bytes(src))
                    by_shard = {}
                    for i, (t, s) in enumerate(index["weight_map"].items()):
                        by_shard.setdefault(s, []).append((t, i % 3 + 1))
                    for s, ts in by_shard.items():
                        header, off = {}, 0
                        for t, count in ts:
                            header[t] = {"dtype": "F16", "shape": [count],
                                         "data_offsets": [off, off + 2 * count]}
                            off += 2 * count
                        h = json.dumps(header).encode()
                        h += b" " * (-len(h) % 8)
                        write_bytes(os.path.join(tmp, s),
                                    struct.pack("<Q", len(h)) + h + bytes(off))
                    rc, out, err = inspect(dst)
                    self.assertEqual(rc, 0, err)
                    d = json.loads(out)
                    self.assertEqual(d["format"], "safetensors-sharded")
                    files = [os.path.basename(f["path"]) for f in d["files"]]
                    self.assertEqual(files, shards)
                    got = {t["name"]: files[t["file"]] for t in d["tensors"]}
                    self.assertEqual(got, index["weight_map"])
                    want_meta = {k: v for k, v in index.get("metadata", {}).items()}
                    self.assertEqual({k: v["value"] for k, v in d["metadata"].items()},
                                     want_meta)
                    self.assertTrue(all(v["type"] == "i64" for v in d["metadata"].values()))


if __name__ == "__main__":
    unittest.main()
