"""test_torch_compare.py - ttsm's PyTorch reader against torch.load(weights_only=True).

For every fixture (freshly written by torch in setUpClass, and the committed copies)
and every third-party PyTorch file: each tensor's dtype, shape, strides, storage
offset and bytes as libttsm reports them (through ctypes, both I/O modes) and as
`ttsm inspect --json --tensors` prints them equal what torch.load returns; shared
storages are shared; non-tensor values are the metadata; `ttsm convert` output
re-read as safetensors equals the torch tensors. Malicious files are refused and
their payloads provably never run.
"""
import ctypes
import importlib.util
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import uuid
import zipfile

SRC = os.environ.get("TTSM_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
TTSM = os.environ.get("TTSM")
LIB = os.environ.get("TTSM_LIBRARY")
THIRD_PARTY = os.path.join(SRC, "tests", "data", "third_party", "pytorch")
COMMITTED = os.path.join(SRC, "tests", "fixtures", "torch")

_spec = importlib.util.spec_from_file_location(
    "gen_torch_fixtures", os.path.join(SRC, "tests", "fixtures", "gen_torch_fixtures.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
torch = gen.torch

ELEM = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
        "U8": 1, "BOOL": 1, "C64": 8, "C128": 16}
NOT_SAFETENSORS = {"C128"}
LEGACY_FILES = {"burn_simple_legacy.pt", "legacy.pt"}


# ---- libttsm through ctypes -------------------------------------------------

class Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("io_mode", ctypes.c_int),
                ("max_inflate_bytes", ctypes.c_uint64)]


class TensorInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_uint32),
                ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("contiguous", ctypes.c_int),
                ("n_elements", ctypes.c_uint64), ("nbytes", ctypes.c_uint64),
                ("file_index", ctypes.c_uint32), ("file_offset", ctypes.c_uint64),
                ("storage_index", ctypes.c_uint32), ("storage_offset", ctypes.c_uint64)]


class MetaEntry(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("type", ctypes.c_char_p), ("json", ctypes.c_char_p)]


class Attempt(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 256)]


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 512),
                ("hint", ctypes.c_char * 256), ("n_attempts", ctypes.c_size_t),
                ("n_attempts_dropped", ctypes.c_size_t), ("attempts", Attempt * 8)]


class Lib:
    def __init__(self, path):
        L = ctypes.CDLL(path)
        L.ttsm_checkpoint_options_default.restype = Options
        L.ttsm_checkpoint_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(Options),
                                           ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Error)]
        L.ttsm_checkpoint_close.argtypes = [ctypes.c_void_p]
        for fn in ("tensor_count", "metadata_count"):
            getattr(L, "ttsm_checkpoint_" + fn).argtypes = [ctypes.c_void_p]
            getattr(L, "ttsm_checkpoint_" + fn).restype = ctypes.c_size_t
        L.ttsm_checkpoint_tensor.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        L.ttsm_checkpoint_tensor.restype = ctypes.POINTER(TensorInfo)
        L.ttsm_checkpoint_metadata.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        L.ttsm_checkpoint_metadata.restype = ctypes.POINTER(MetaEntry)
        L.ttsm_checkpoint_tensor_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(TensorInfo),
                                                  ctypes.POINTER(ctypes.c_void_p),
                                                  ctypes.POINTER(Error)]
        L.ttsm_checkpoint_format.argtypes = [ctypes.c_void_p]
        L.ttsm_checkpoint_version.argtypes = [ctypes.c_void_p]
        L.ttsm_checkpoint_version.restype = ctypes.c_uint32
        L.ttsm_dtype_name.restype = ctypes.c_char_p
        self.L = L

    def read(self, path, io_mode=0, max_inflate=0):
        """(tensors {name: dict}, metadata {key: (type, value)}, version) or
        raises RuntimeError(code, message)."""
        L = self.L
        opts = L.ttsm_checkpoint_options_default()
        opts.io_mode = io_mode
        if max_inflate:
            opts.max_inflate_bytes = max_inflate
        ck = ctypes.c_void_p()
        err = Error()
        st = L.ttsm_checkpoint_open(path.encode(), ctypes.byref(opts), ctypes.byref(ck),
                                    ctypes.byref(err))
        if st != 0:
            raise RuntimeError(st, err.message.decode(errors="replace"))
        try:
            tensors = {}
            for i in range(L.ttsm_checkpoint_tensor_count(ck)):
                tp = L.ttsm_checkpoint_tensor(ck, i)
                t = tp.contents
                data = ctypes.c_void_p()
                st = L.ttsm_checkpoint_tensor_data(ck, tp, ctypes.byref(data), ctypes.byref(err))
                if st != 0:
                    raise RuntimeError(st, err.message.decode(errors="replace"))
                raw = ctypes.string_at(data.value, t.nbytes) if t.nbytes else b""
                tensors[t.name.decode()] = {
                    "dtype": L.ttsm_dtype_name(t.dtype).decode(),
                    "shape": [t.shape[d] for d in range(t.rank)],
                    "strides": [t.strides[d] for d in range(t.rank)],
                    "contiguous": bool(t.contiguous), "nbytes": t.nbytes,
                    "file_offset": t.file_offset, "storage": t.storage_index,
                    "storage_offset": t.storage_offset, "raw": raw,
                }
            meta = {}
            for i in range(L.ttsm_checkpoint_metadata_count(ck)):
                m = L.ttsm_checkpoint_metadata(ck, i).contents
                meta[m.key.decode()] = (m.type.decode(), json.loads(m.json.decode()))
            return tensors, meta, L.ttsm_checkpoint_version(ck)
        finally:
            L.ttsm_checkpoint_close(ck)


def gather(raw, shape, strides, elem):
    """Row-major elements of a strided view over raw (starting at its first byte)."""
    out = bytearray()
    n = 1
    for s in shape:
        n *= s
    if n == 0:
        return b""
    idx = [0] * len(shape)
    for _ in range(n):
        off = sum(i * s for i, s in zip(idx, strides)) * elem
        out += raw[off:off + elem]
        for d in reversed(range(len(shape))):
            idx[d] += 1
            if idx[d] < shape[d]:
                break
            idx[d] = 0
    return bytes(out)


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    end = 0
    for name, h in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = h["data_offsets"]
        assert b == end, "safetensors data has a hole before %s" % name
        end = e
        tensors[name] = (h["dtype"], h["shape"], data[b:e])
    assert end == len(data), "safetensors data region not covered exactly"
    assert (8 + n) % 8 == 0
    return tensors, meta


def torch_load(path, ours):
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        if not ours:
            raise
        # torch 1.13's weights_only unpickler lacks BINFLOAT and _codecs; our own
        # fixtures (written by this test run) are trusted, so load them fully.
        return torch.load(path)


@unittest.skipIf(torch is None, "python3-torch is not installed")
@unittest.skipIf(not TTSM or not LIB, "run through ctest ($TTSM, $TTSM_LIBRARY)")
class TorchCompare(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ttsm-torch-")
        cls.fresh = os.path.join(cls.tmp, "fixtures")
        gen.main(["gen", cls.fresh])
        cls.lib = Lib(LIB)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def valid_files(self):
        files = []
        for d, ours in ((self.fresh, True), (COMMITTED, True), (THIRD_PARTY, False)):
            for name in sorted(os.listdir(d)):
                if name.endswith((".pt", ".pth")):
                    files.append((os.path.join(d, name), ours))
        return files

    def test_third_party_files_are_present(self):
        names = [n for n in os.listdir(THIRD_PARTY) if n.endswith(".pt")]
        self.assertGreaterEqual(len(names), 5)

    def check_file(self, path, ours):
        obj = torch_load(path, ours)
        want_t, want_m = gen.flatten(obj)
        for io_mode in (0, 1):
            got_t, got_m, version = self.lib.read(path, io_mode)
            self.assertEqual(sorted(got_t), sorted(want_t), path)
            self.assertEqual(version, 1001 if os.path.basename(path) in LEGACY_FILES else 3,
                             path)
            with open(path, "rb") as f:
                file_bytes = f.read()
            storages = {}
            for name, t in want_t.items():
                g = got_t[name]
                what = "%s: %s" % (path, name)
                dt = gen.TTSM_DTYPES[t.dtype]
                self.assertEqual(g["dtype"], dt, what)
                self.assertEqual(g["shape"], list(t.shape), what)
                self.assertEqual(g["strides"], list(t.stride()), what)
                self.assertEqual(g["storage_offset"], t.storage_offset() * ELEM[dt], what)
                self.assertEqual(g["contiguous"], t.is_contiguous() or t.numel() <= 1, what)
                self.assertEqual(gather(g["raw"], g["shape"], g["strides"], ELEM[dt]),
                                 gen.tensor_bytes(t), what)
                if g["file_offset"] != 2**64 - 1 and g["nbytes"]:
                    # Stored members: the bytes lie in the file at that offset.
                    self.assertEqual(file_bytes[g["file_offset"]:g["file_offset"] + g["nbytes"]],
                                     g["raw"], what)
                storages.setdefault(t.storage().data_ptr() if t.numel() else id(t),
                                    set()).add(g["storage"])
            # One ttsm storage per torch storage: tied weights are not duplicated.
            for ptr, idx in storages.items():
                self.assertEqual(len(idx), 1, "%s: a torch storage became %s" % (path, idx))
            used = [next(iter(idx)) for ptr, idx in storages.items()]
            self.assertEqual(len(used), len(set(used)), "%s: torch storages merged" % path)
            self.assertEqual(got_m, {k: (ty, v) for k, (ty, v) in want_m.items()}, path)
        return want_t, want_m

    def check_inspect(self, path):
        r = subprocess.run([TTSM, "inspect", path, "--json", "--tensors"], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["format"], "pytorch-zip")
        got, _, _ = self.lib.read(path)
        self.assertEqual(doc["tensor_count"], len(got))
        for t in doc["tensors"]:
            g = got[t["name"]]
            self.assertEqual(t["dtype"], g["dtype"])
            self.assertEqual(t["shape"], g["shape"])
            self.assertEqual(t["strides"], g["strides"])
            self.assertEqual(t["storage_offset"], g["storage_offset"])
            self.assertEqual(t["offset"], None if g["file_offset"] == 2**64 - 1
                             else g["file_offset"])
        _, meta, _ = self.lib.read(path)
        self.assertEqual({k: (v["type"], v["value"]) for k, v in doc["metadata"].items()}, meta)

    def check_convert(self, path, want_t, want_m):
        out = os.path.join(self.tmp, "conv", os.path.basename(path) + ".safetensors")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if os.path.exists(out):
            os.unlink(out)
        r = subprocess.run([TTSM, "convert", path, out], capture_output=True, text=True)
        bad = [n for n, t in want_t.items() if gen.TTSM_DTYPES[t.dtype] in NOT_SAFETENSORS]
        if bad:
            self.assertEqual(r.returncode, 6, r.stderr)
            self.assertIn("safetensors cannot store", r.stderr)
            self.assertFalse(os.path.exists(out))
            self.assertEqual([n for n in os.listdir(os.path.dirname(out)) if "ttsm-" in n], [])
            return
        self.assertEqual(r.returncode, 0, r.stderr)
        tensors, meta = read_safetensors(out)
        self.assertEqual(sorted(tensors), sorted(want_t))
        for name, t in want_t.items():
            dt, shape, data = tensors[name]
            self.assertEqual(dt, gen.TTSM_DTYPES[t.dtype], name)
            self.assertEqual(shape, list(t.shape), name)
            self.assertEqual(data, gen.tensor_bytes(t), "%s: %s" % (path, name))
            if t.numel():
                back = torch.frombuffer(bytearray(data), dtype=t.dtype).reshape(t.shape)
                self.assertTrue(torch.equal(back, t.detach()) or t.dtype.is_floating_point,
                                name)
        self.assertEqual(sorted(meta), sorted(want_m))
        for k, (ty, v) in want_m.items():
            self.assertIsInstance(meta[k], str)
            self.assertEqual(meta[k] if ty == "str" else json.loads(meta[k]), v, k)

    def test_every_file(self):
        files = self.valid_files()
        self.assertGreater(len(files), 30)
        for path, ours in files:
            with self.subTest(path=path):
                want_t, want_m = self.check_file(path, ours)
                self.check_inspect(path)
                self.check_convert(path, want_t, want_m)

    def test_shared_and_views(self):
        got, _, _ = self.lib.read(os.path.join(self.fresh, "shared.pt"))
        self.assertEqual(got["embed.weight"]["storage"], got["lm_head.weight"]["storage"])
        self.assertEqual(got["row2"]["storage"], got["embed.weight"]["storage"])
        self.assertEqual(got["row2"]["storage_offset"], 2 * 4 * 4)
        self.assertFalse(got["col"]["contiguous"])
        got, _, _ = self.lib.read(os.path.join(self.fresh, "views.pt"))
        self.assertEqual(got["transposed"]["strides"], [1, 6])
        self.assertEqual(got["sliced"]["storage_offset"], (6 + 2) * 4)
        self.assertEqual(got["expanded"]["strides"], [0, 1])

    def test_deflated_members_live_in_memory(self):
        got, _, _ = self.lib.read(os.path.join(self.fresh, "deflated.pt"))
        self.assertTrue(all(t["file_offset"] == 2**64 - 1 for t in got.values()))
        with self.assertRaises(RuntimeError) as cm:
            self.lib.read(os.path.join(self.fresh, "deflated.pt"), max_inflate=8)
        self.assertEqual(cm.exception.args[0], 5)
        self.assertIn("max_inflate_bytes", cm.exception.args[1])

    def test_legacy_trailing_bytes(self):
        """A legacy file with bytes after its last storage: torch.load takes it
        (it stops after the last record), and so does ttsm, with the same
        tensors (docs/formats/pytorch.md)."""
        src = os.path.join(self.fresh, "legacy.pt")
        path = os.path.join(self.tmp, "legacy_trailing.pt")
        with open(src, "rb") as f:
            blob = f.read()
        with open(path, "wb") as f:
            f.write(blob + b"trailing bytes that no record describes" * 10)
        want = torch.load(path)
        got, _, version = self.lib.read(path)
        self.assertEqual(version, 1001)
        plain, _, _ = self.lib.read(src)
        self.assertEqual({k: v["raw"] for k, v in got.items()},
                         {k: v["raw"] for k, v in plain.items()})
        want_t, _ = gen.flatten(want)
        self.assertEqual(sorted(got), sorted(want_t))
        for k, t in want_t.items():
            if got[k]["contiguous"]:
                self.assertEqual(got[k]["raw"], t.contiguous().numpy().tobytes(), k)

    def test_zip64_is_zip64(self):
        path = os.path.join(self.fresh, "zip64.pt")
        with open(path, "rb") as f:
            blob = f.read()
        self.assertIn(b"PK\x06\x06", blob)
        self.assertIn(b"PK\x06\x07", blob)
        with zipfile.ZipFile(path) as z:  # and a standard reader agrees it is sound
            self.assertIsNone(z.testzip())
        a, _, _ = self.lib.read(path)
        b, _, _ = self.lib.read(os.path.join(self.fresh, "nested.pt"))
        self.assertEqual({k: v["raw"] for k, v in a.items()}, {k: v["raw"] for k, v in b.items()})

    def test_convert_overwrite_and_atomicity(self):
        src = os.path.join(self.fresh, "nested.pt")
        d = tempfile.mkdtemp(dir=self.tmp)
        out = os.path.join(d, "o.safetensors")
        with open(out, "wb") as f:
            f.write(b"keep me")
        r = subprocess.run([TTSM, "convert", src, out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--force", r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), b"keep me")
        r = subprocess.run([TTSM, "convert", src, out, "--force"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        read_safetensors(out)
        # A failing conversion leaves neither OUT nor a temporary file.
        bad = os.path.join(COMMITTED, "malicious", "os_system.pt")
        out2 = os.path.join(d, "p.safetensors")
        r = subprocess.run([TTSM, "convert", bad, out2], capture_output=True, text=True)
        self.assertEqual(r.returncode, 6)
        r = subprocess.run([TTSM, "convert", os.path.join(self.fresh, "dtypes.pt"), out2],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 6)
        self.assertEqual(sorted(os.listdir(d)), ["o.safetensors"])

    def test_malicious_refused(self):
        for d in (os.path.join(self.fresh, "malicious"), os.path.join(COMMITTED, "malicious")):
            with open(os.path.join(d, "expected.tsv")) as f:
                rows = [l.rstrip("\n").split("\t") for l in f if not l.startswith("#")]
            self.assertGreater(len(rows), 40)
            for name, needle in rows:
                with self.subTest(file=name):
                    for io_mode in (0, 1):
                        with self.assertRaises(RuntimeError) as cm:
                            self.lib.read(os.path.join(d, name), io_mode)
                        self.assertEqual(cm.exception.args[0], 5, cm.exception.args[1])
                        self.assertIn(needle, cm.exception.args[1])
        leftovers = [n for n in os.listdir("/tmp") if n.startswith("ttsm-pwned-fixture")]
        self.assertEqual(leftovers, [])

    def test_payload_would_run_but_does_not(self):
        marker = "/tmp/ttsm-pwned-%s" % uuid.uuid4().hex
        pkl = gen.call_global("os", "system", "touch " + marker)
        # The payload is real: Python's own unpickler runs it.
        subprocess.run([sys.executable, "-c", "import pickle,sys; "
                        "pickle.loads(bytes.fromhex(sys.argv[1]))", pkl.hex()], check=True,
                       stdout=subprocess.DEVNULL)
        self.assertTrue(os.path.exists(marker))
        os.unlink(marker)
        for proto in (2, 4):
            for mod, fn in (("os", "system"), ("subprocess", "getoutput"), ("posix", "system")):
                path = os.path.join(self.tmp, "evil-%s-%s-%d.pt" % (mod, fn, proto))
                gen.pickle_zip(path, gen.call_global(mod, fn, "touch " + marker, proto=proto))
                for argv in (["inspect", path], ["convert", path, path + ".st"]):
                    r = subprocess.run([TTSM] + argv, capture_output=True, text=True)
                    self.assertEqual(r.returncode, 6, r.stderr)
                    self.assertIn("refusing %s.%s: checkpoints are read as data" % (mod, fn),
                                  r.stderr)
                self.assertFalse(os.path.exists(marker))
                self.assertFalse(os.path.exists(path + ".st"))
        # A legacy-looking bare pickle with the payload.
        path = os.path.join(self.tmp, "evil-bare.pt")
        with open(path, "wb") as f:
            f.write(pkl)
        with self.assertRaises(RuntimeError):
            self.lib.read(path)
        self.assertFalse(os.path.exists(marker))


if __name__ == "__main__":
    unittest.main()
