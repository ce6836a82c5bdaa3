"""test_bind_dtype.py - zero-copy module binding and the dtype load param.
bind(): every parameter and buffer is ttsm's memory (data_ptr), anonymous
resident memory does not grow while load_state_dict() grows it by the
weights, names/shapes/dtypes checked with the differences listed, tied
weights stay tied, strict=False reports what it left. dtype: float16,
bfloat16 and float32 at load are bit for bit what torch's Tensor.to()
gives (its reference CPU path, run in a subprocess with
ATEN_CPU_CAPABILITY=default, for every float16 and bfloat16 pattern and a
million float32 and float64 ones; the vectorised path in this process for
everything but NaN payloads), charged to the budget, in the cache key, and
mapped from IndexTTS-2's use_fp16."""
import gc
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

from ttsm_testutil import SRC, numpy, rss_anon, torch, ttsm, write_safetensors

EXAMPLES = os.path.join(SRC, "examples", "models")


class Bind(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ttsm-bind-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    class Net(torch.nn.Module):
        def __init__(self, device=None):
            super().__init__()
            self.conv = torch.nn.Conv1d(2, 4, 3, device=device)
            self.norm = torch.nn.BatchNorm1d(4, device=device)
            self.emb = torch.nn.Embedding(10, 4, device=device)
            self.head = torch.nn.Linear(4, 10, bias=False, device=device)
            self.head.weight = self.emb.weight  # tied
            self.rnn = torch.nn.LSTM(4, 4, device=device)  # keeps views of its weights

        def forward(self, x):
            h = self.norm(self.conv(x))
            return self.head(h.mean(-1) + self.rnn(h.transpose(1, 2))[0].mean(1))

    def write_net(self):
        torch.manual_seed(3)
        ref = self.Net().eval()
        ref.norm.running_mean.uniform_()
        path = os.path.join(self.dir, "net.safetensors")
        write_safetensors(path, {k: v for k, v in ref.state_dict().items()
                                 if k != "head.weight"})  # tied: stored once
        return ref, path

    def test_zero_copy_and_equal_outputs(self):
        ref, path = self.write_net()
        with ttsm.Manager() as mgr, mgr.load("file", model_path=path, device="cpu") as m:
            net = self.Net(device="meta").eval()
            res = m.bind(net)
            self.assertEqual(res, ttsm.BindResult([], []))
            ptrs = {n: t.data_ptr for n, t in m.tensors().items()}
            for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                self.assertEqual(t.data_ptr(), ptrs[name], name)
                self.assertFalse(t.requires_grad)
            self.assertIs(net.head.weight, net.emb.weight)  # still tied
            self.assertEqual(net.head.weight.data_ptr(), ptrs["emb.weight"])
            x = torch.randn(3, 2, 8)
            with torch.no_grad():
                self.assertTrue(torch.equal(net(x), ref(x)))
            # load_state_dict copies instead: other memory.
            copy = self.Net().eval()
            copy.load_state_dict(m.state_dict(), strict=False)
            self.assertNotEqual(copy.conv.weight.data_ptr(), ptrs["conv.weight"])

    def test_rss_does_not_grow(self):
        path = os.path.join(self.dir, "big.safetensors")
        n = 2048
        w = torch.randn(n, 2 * n)
        write_safetensors(path, {"weight": w})
        del w
        gc.collect()
        size = n * 2 * n * 4  # 32 MiB
        with ttsm.Manager() as mgr, mgr.load("file", model_path=path, device="cpu") as m:
            before = rss_anon()
            lin = torch.nn.Linear(2 * n, n, bias=False, device="meta")
            m.bind(lin)
            grown_bind = rss_anon() - before
            self.assertEqual(lin.weight.data_ptr(), m.tensors()["weight"].data_ptr)
            before = rss_anon()
            real = torch.nn.Linear(2 * n, n, bias=False)
            real.load_state_dict(m.state_dict())
            grown_copy = rss_anon() - before
            del real
        self.assertLess(grown_bind, size // 8, (grown_bind, grown_copy))
        self.assertGreater(grown_copy, size * 9 // 10, (grown_bind, grown_copy))

    def test_checks_and_strict(self):
        _, path = self.write_net()
        with ttsm.Manager() as mgr, mgr.load("file", model_path=path, device="cpu") as m:
            class Wrong(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = torch.nn.Conv1d(2, 5, 3, device="meta")  # 5 outputs, not 4
                    self.emb = torch.nn.Embedding(10, 4, device="meta", dtype=torch.float16)
                    self.extra = torch.nn.Linear(1, 1, device="meta")
            net = Wrong()
            with self.assertRaises(ttsm.TTSInvalidArgumentError) as cm:
                m.bind(net)
            msg = cm.exception.message
            self.assertIn("3 mismatched", msg)
            self.assertIn("conv.weight: module (5, 2, 3) float32, weights (4, 2, 3) float32", msg)
            self.assertIn("emb.weight: module (10, 4) float16, weights (10, 4) float32", msg)
            self.assertIn("2 missing from the weights (extra.weight, extra.bias)", msg)
            self.assertIn("tensors no module slot takes (norm.weight", msg)
            self.assertEqual(net.conv.weight.device.type, "meta")  # nothing changed
            with self.assertRaises(ttsm.TTSInvalidArgumentError):
                m.bind(net, strict=False)  # mismatches are never bound

            class Part(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = torch.nn.Conv1d(2, 4, 3, device="meta")
                    self.extra = torch.nn.Linear(1, 1, device="meta")
            part = Part()
            res = m.bind(part, strict=False)
            self.assertEqual(res.missing_keys, ["extra.weight", "extra.bias"])
            self.assertIn("norm.running_mean", res.unexpected_keys)
            self.assertEqual(part.conv.bias.device.type, "cpu")
            # prefix: the checkpoint's names carry one the module's do not.
            conv = torch.nn.Conv1d(2, 4, 3, device="meta")
            self.assertEqual(m.bind(conv, prefix="conv."), ttsm.BindResult([], []))
            with self.assertRaises(ttsm.TTSInvalidArgumentError):
                m.bind("not a module")


def raw(path):
    """{name: (dtype, bytes)} of a safetensors file, read with struct+json."""
    import json
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    h = json.loads(blob[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v["dtype"], blob[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items()}


# Run in a subprocess with ATEN_CPU_CAPABILITY=default: torch's reference
# (scalar) conversions, NaN payloads included.
REFERENCE = r"""
import sys, torch
sys.path.insert(0, sys.argv[1])
from test_bind_dtype import raw
src, out = sys.argv[2], sys.argv[3]
names = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}
with open(out, "wb") as f:
    for name, (dt, data) in sorted(raw(src).items()):
        if dt not in names:
            continue
        t = torch.frombuffer(bytearray(data), dtype=names[dt])
        for to in (torch.float16, torch.bfloat16, torch.float32):
            f.write(t.to(to).numpy().tobytes() if to != torch.bfloat16
                    else t.to(to).view(torch.int16).numpy().tobytes())
"""


class Dtype(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ttsm-dtype-")
        rng = numpy.random.default_rng(7)
        all16 = numpy.arange(1 << 16, dtype=numpy.uint16)
        specials = numpy.array([0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7f800000,
                                0xff800000, 0, 0x80000000, 1, 0x33000000, 0x33000001,
                                0x477fe000, 0x477ff000, 0x477fefff, 0x3f808000, 0x3f818000,
                                0x7f7fffff, 0x387fc000], dtype=numpy.uint32)
        f32 = numpy.concatenate([specials, rng.integers(0, 1 << 32, size=1 << 20,
                                                        dtype=numpy.uint64).astype(numpy.uint32)])
        f64 = numpy.concatenate([rng.integers(0, 1 << 64, size=1 << 18, dtype=numpy.uint64),
                                 rng.normal(size=1 << 18).view(numpy.uint64)])
        cls.path = os.path.join(cls.dir, "all.safetensors")
        write_safetensors(cls.path, {
            "f16": torch.from_numpy(all16.view(numpy.float16).copy()),
            "bf16": torch.from_numpy(all16.view(numpy.int16).copy()).view(torch.bfloat16),
            "f32": torch.from_numpy(f32.view(numpy.float32).copy()),
            "f64": torch.from_numpy(f64.view(numpy.float64).copy()),
            "ids": torch.arange(5, dtype=torch.int64)})
        ref = os.path.join(cls.dir, "ref.bin")
        env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
        subprocess.run([sys.executable, "-c", REFERENCE, os.path.dirname(__file__), cls.path, ref],
                       check=True, env=env)
        with open(ref, "rb") as f:
            cls.reference = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def test_bit_exact_against_torch(self):
        sizes = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
        src = raw(self.path)
        at = 0
        expected = {}
        for name, (dt, data) in sorted(src.items()):
            if dt not in sizes:
                continue
            n = len(data) // sizes[dt]
            for to, w in (("float16", 2), ("bfloat16", 2), ("float32", 4)):
                expected[(name, to)] = self.reference[at:at + n * w]
                at += n * w
        self.assertEqual(at, len(self.reference))
        with ttsm.Manager(io_mode="read") as mgr:
            for to in ("float16", "bfloat16", "float32"):
                with mgr.load("file", model_path=self.path, device="cpu", dtype=to) as m:
                    self.assertEqual(m.dtype, to)
                    ts = m.tensors()
                    self.assertEqual(ts["ids"].dtype, "I64")  # integers stay as stored
                    for name in ("f16", "bf16", "f32", "f64"):
                        got = bytes(ts[name].raw().to_torch().numpy())
                        want = expected[(name, to)]
                        if got != want:
                            a = numpy.frombuffer(got, dtype=numpy.uint8)
                            b = numpy.frombuffer(want, dtype=numpy.uint8)
                            bad = numpy.nonzero(a != b)[0]
                            self.fail("%s -> %s: %d bytes differ, first at %d" %
                                      (name, to, len(bad), bad[0]))
                        # And this process's (vectorised) torch: equal but for NaN payloads.
                        here = torch.from_numpy(numpy.frombuffer(
                            src[name][1], dtype={"f16": numpy.float16, "f32": numpy.float32,
                                                 "f64": numpy.float64, "bf16": numpy.int16}[name]
                        ).copy())
                        if name == "bf16":
                            here = here.view(torch.bfloat16)
                        here = here.to(getattr(torch, to))
                        mine = ts[name].to_torch()
                        nan = torch.isnan(here)
                        self.assertTrue(torch.equal(torch.isnan(mine), nan), (name, to))
                        self.assertTrue(torch.equal(mine[~nan].view(-1).float(),
                                                    here[~nan].view(-1).float()), (name, to))

    def test_charged_keyed_and_mapped(self):
        with ttsm.Manager() as mgr:
            with mgr.load("file", model_path=self.path, device="cpu") as plain, \
                 mgr.load("file", model_path=self.path, device="cpu", dtype="float16") as half:
                self.assertNotEqual(plain.key, half.key)
                self.assertEqual(half.key, ttsm.cache_key("file", model_path=self.path,
                                                          device="cpu", dtype="float16"))
                # 65536*2 + 65536*2 + n32*2 + n64*2 + ids as stored.
                src = raw(self.path)
                want = sum(len(d) // {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}[dt] * 2
                           if dt != "I64" else len(d) for dt, d in src.values())
                self.assertEqual(half.bytes, want)
                self.assertEqual(mgr.stats().devices["cpu"].in_use, plain.bytes + half.bytes)
            with self.assertRaises(ttsm.TTSInvalidArgumentError) as cm:
                mgr.load("file", model_path=self.path, device="cpu", dtype="half")
            self.assertIn("dtype=half is not an allowed value", cm.exception.message)
        # IndexTTS-2's use_fp16 means dtype=float16 (its manifest says so).
        with ttsm.Manager(models_dir=EXAMPLES) as mgr:
            with mgr.load("index_tts", device="cpu") as f32, \
                 mgr.load("index_tts", device="cpu", use_fp16=True) as f16:
                self.assertIsNone(f32.dtype)
                self.assertEqual(f16.dtype, "float16")
                self.assertIn("dtype=float16", ttsm.cache_key_canonical(
                    "index_tts", device="cpu", use_fp16=True))
                comp = next(c for c in f32.components if f32.component_info(c).kind == "tensors"
                            and any(t.dtype == "F32" for t in f32.tensors(c).values()))
                a, b = f32.state_dict(comp), f16.state_dict(comp)
                for k, t in a.items():
                    if t.dtype == torch.float32:
                        self.assertEqual(b[k].dtype, torch.float16)
                        self.assertTrue(torch.equal(b[k], t.to(torch.float16)), k)
                self.assertLess(f16.bytes, f32.bytes)
            with self.assertRaises(ttsm.TTSInvalidArgumentError):
                mgr.load("index_tts", device="cpu", use_fp16=True, dtype="bfloat16")


if __name__ == "__main__":
    unittest.main()
