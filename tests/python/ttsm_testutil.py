"""ttsm_testutil.py - shared by the Python binding tests (not a test module):
paths, importing the binding from the source tree, an independent
standard-library reading of safetensors files, the fixture lists, and the
DLPack type codes each ttsm dtype must get (from the DLPack 1.1 header)."""
import importlib.util
import json
import os
import struct
import sys

SRC = os.path.abspath(os.environ.get("TTSM_SRC",
                                     os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("TTSM_BUILD")
CLI = os.environ.get("TTSM")
THIRD_PARTY = os.path.join(SRC, "tests", "data", "third_party")
FIXTURES = os.path.join(SRC, "tests", "fixtures")

sys.path.insert(0, os.path.join(SRC, "python"))
import ttsm  # noqa: E402  (the binding under test, from the source tree)

_spec = importlib.util.spec_from_file_location(
    "gen_torch_fixtures", os.path.join(FIXTURES, "gen_torch_fixtures.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
torch = gen.torch

try:
    import numpy
except ImportError:  # pragma: no cover - Debian's python3-numpy is a test dependency
    numpy = None

# (DLPack type code, bits) per ttsm dtype: kDLInt 0, kDLUInt 1, kDLFloat 2,
# kDLBfloat 4, kDLComplex 5, kDLBool 6, kDLFloat8_e4m3fn 10, _e5m2 12, _e8m0fnu 14.
DL_TYPES = {
    "BOOL": (6, 8), "U8": (1, 8), "I8": (0, 8), "U16": (1, 16), "I16": (0, 16),
    "F16": (2, 16), "BF16": (4, 16), "U32": (1, 32), "I32": (0, 32), "F32": (2, 32),
    "U64": (1, 64), "I64": (0, 64), "F64": (2, 64), "F8_E5M2": (12, 8), "F8_E4M3": (10, 8),
    "F8_E8M0": (14, 8), "C32": (5, 32), "C64": (5, 64), "C128": (5, 128),
}
SUB_BYTE = {"F4", "F6_E2M3", "F6_E3M2"}
NUMPY_TYPES = {"U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "F16": "float16",
               "U32": "uint32", "I32": "int32", "F32": "float32", "U64": "uint64",
               "I64": "int64", "F64": "float64", "C64": "complex64", "C128": "complex128"}


def torch_dtype(name):
    """The torch dtype of a ttsm dtype name, or None where this torch lacks it."""
    return getattr(torch, ttsm.tensor.TORCH_DTYPE_NAMES.get(name, ""), None)


def read_safetensors(path):
    """{name: (dtype, shape, bytes)} and metadata, with nothing but struct and json."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    data = blob[8 + n:]
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        out[name] = (h["dtype"], list(h["shape"]), data[b:e])
    return out, meta


def read_sharded(index_path):
    with open(index_path, encoding="utf-8") as f:
        index = json.load(f)
    out = {}
    folder = os.path.dirname(index_path)
    for shard in sorted(set(index["weight_map"].values())):
        tensors, _ = read_safetensors(os.path.join(folder, shard))
        for name, t in tensors.items():
            if index["weight_map"].get(name) == shard:
                out[name] = t
    return out


def safetensors_files():
    """Every valid safetensors fixture: ours, the sharded indexes, the third-party ones."""
    d = os.path.join(FIXTURES, "safetensors")
    files = [os.path.join(d, n) for n in sorted(os.listdir(d))
             if n.startswith("ok_") and n.endswith(".safetensors")]
    files += [os.path.join(d, "index", n) for n in ("ok.safetensors.index.json",
                                                    "ok_no_metadata.safetensors.index.json")]
    t = os.path.join(THIRD_PARTY, "safetensors")
    files += [os.path.join(t, n) for n in sorted(os.listdir(t))
              if n.endswith(".safetensors") and "abuse" not in n]
    return files


def torch_files(fresh_dir=None):
    """(path, ours) of every valid PyTorch fixture: freshly written by this
    torch (when fresh_dir is given), the committed ones and the third-party ones."""
    dirs = [(os.path.join(FIXTURES, "torch"), True), (os.path.join(THIRD_PARTY, "pytorch"), False)]
    if fresh_dir:
        dirs.insert(0, (fresh_dir, True))
    files = []
    for d, ours in dirs:
        for n in sorted(os.listdir(d)):
            if n.endswith((".pt", ".pth")):
                files.append((os.path.join(d, n), ours))
    return files


def torch_load(path, ours):
    """torch.load(weights_only=True); torch 1.13's restricted unpickler lacks
    some opcodes our own (trusted, generated) fixtures use, so those fall back."""
    try:
        return torch.load(path, weights_only=True)
    except Exception:
        if not ours:
            raise
        return torch.load(path)


def tensor_bytes(t):
    """Row-major element bytes of a torch tensor, whatever its dtype and strides."""
    return gen.tensor_bytes(t)


def mapping_of(address):
    """(pathname, writable-private) of the /proc/self/maps mapping holding address."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                path = parts[5].strip() if len(parts) > 5 else ""
                return path, parts[1]
    return None, None


def fakecuda_path():
    """The stand-in CUDA driver the C tests use (built with the tests)."""
    if not BUILD:
        return None
    p = os.path.join(BUILD, "tests", "libfakecuda.so")
    return p if os.path.exists(p) else None


def write_safetensors(path, tensors, metadata=None):
    """A safetensors file from {name: torch.Tensor}, written with struct+json only."""
    names = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.float64: "F64", torch.int32: "I32"}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def manifest(name, models=("a", "b", "c"), engine_memory=None, can_corrupt=False,
             params=None):
    """A tiny engine manifest: each model one tensors component "net"
    (<root>/TTS/<name>/<model>/net.safetensors)."""
    m = {"schema": 1, "name": name, "runtime": "pytorch", "model_types": ["tts"],
         "devices": ["cpu", "cuda"], "folder": name, "default_model": models[0],
         "capabilities": {"supports_voice_conversion": False, "has_fallback": False,
                          "can_corrupt": can_corrupt, "requires_special_init": False,
                          "language_selects_model": False, "single_instance": False,
                          "recovery": "invalidate" if can_corrupt else "none"},
         "models": [{"name": n, "components": [{"name": "net", "kind": "tensors",
                                                "files": ["net.safetensors"]}]}
                    for n in models]}
    if engine_memory:
        m["engine_memory"] = engine_memory
    if params:
        m["params"] = params
    return m


def write_models(root, name, models=("a", "b", "c"), width=16):
    """net.safetensors of a Linear(width, width) per model (distinct values):
    width*width*4 + width*4 bytes each (1088 for 16)."""
    for i, n in enumerate(models):
        g = torch.Generator().manual_seed(i)
        write_safetensors(os.path.join(root, "TTS", name, n, "net.safetensors"),
                          {"weight": torch.randn(width, width, generator=g),
                           "bias": torch.randn(width, generator=g)})


def rss_anon():
    """Anonymous resident memory of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return None
