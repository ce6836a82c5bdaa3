"""test_binding.py - the ttsm Python binding: the library and its structs,
every error category raising its class (with message, hint and attempts),
lifetimes (tensors outliving Model and Manager under gc; references back to
zero when tensors die, seen through manager.loaded()), single-flight loads from
threads, budgets and keep-alive, load_state_dict(strict=True) into torch
modules, espeak-ng synthesis and cache keys against the CLI (the wheel:
test_wheel.py)."""
import ctypes
import gc
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from ttsm_testutil import (CLI, FIXTURES, SRC, THIRD_PARTY, numpy, read_safetensors,
                           tensor_bytes, torch, ttsm)
import ttsm.errors

MNIST = os.path.join(THIRD_PARTY, "safetensors", "burn_mnist.safetensors")
SCALAR = os.path.join(FIXTURES, "safetensors", "ok_scalar.safetensors")


def write_safetensors(path, tensors, metadata=None):
    """A safetensors file from {name: torch.Tensor}, written with struct+json only."""
    import json
    names = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16",
             torch.bfloat16: "BF16"}
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
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def refs(mgr):
    return sum(e.refs for e in mgr.loaded())


class Library(unittest.TestCase):
    def test_version_and_lookup(self):
        self.assertEqual(ttsm.library_version(), ttsm.__version__)
        if os.environ.get("TTSM_LIBRARY"):
            self.assertEqual(ttsm.library_path, os.environ["TTSM_LIBRARY"])
        if CLI:
            out = subprocess.run([CLI, "--version"], capture_output=True, text=True).stdout
            self.assertIn(ttsm.library_version(), out)
        self.assertEqual(ttsm.devices()[0].name, "cpu")
        self.assertIn("file", ttsm.engines())
        self.assertIn("espeak-ng", ttsm.engines())

    def test_explicit_library_that_does_not_exist(self):
        code = "import sys; sys.path.insert(0, %r); import ttsm" % os.path.join(SRC, "python")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ, TTSM_LIBRARY="/nonexistent/libttsm.so"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError: ttsm: cannot use TTSM_LIBRARY=/nonexistent/libttsm.so",
                      r.stderr)

    def test_structs_read_what_the_library_wrote(self):
        """Every field of the mirrored structs, against values known here."""
        with ttsm.Manager(budgets={"cpu": "1GiB"}) as mgr:
            with mgr.load("file", model_path=MNIST, device="cpu") as m:
                want, _ = read_safetensors(MNIST)
                total = sum(len(b) for _, _, b in want.values())
                self.assertEqual(m.bytes, total)
                self.assertEqual((m.engine_name, m.device, m.name), ("file", "cpu", MNIST))
                m2 = mgr.load("file", model_path=MNIST, device="auto" if ttsm.cuda_status()
                              else "cpu")
                [e] = mgr.loaded()
                self.assertEqual((e.key, e.engine, e.model, e.device, e.bytes, e.refs,
                                  e.pinned, e.loading), (m.key, "file", MNIST, "cpu", total, 2,
                                                         False, False))
                mgr.pin(m)
                self.assertTrue(mgr.loaded()[0].pinned)
                mgr.unpin(m.key)
                m2.close()
                s = mgr.stats()
                self.assertEqual((s.hits, s.misses, s.loads, s.evictions, s.failures, s.unloads,
                                  s.invalidations, s.checkpoint_opens, s.entries, s.orphans),
                                 (1, 1, 1, 0, 0, 0, 0, 1, 1, 0))
                self.assertEqual(s.devices["cpu"], ttsm.DeviceStats(1 << 30, total, 0, total, 1))
                t = m.tensors()["conv1.weight"]
                self.assertEqual((t.dtype, t.shape, t.strides, t.nbytes),
                                 ("F32", (8, 1, 3, 3), (9, 9, 3, 1), 8 * 9 * 4))
                self.assertEqual(t.component, "burn_mnist")
        with ttsm.Manager() as mgr, mgr.load("file", model_path=SCALAR, device="cpu"):
            self.assertIsNone(mgr.stats().devices["cpu"].budget)

    def test_sizes_and_durations(self):
        self.assertEqual(ttsm.parse_size("8GiB"), 8 << 30)
        self.assertEqual(ttsm.parse_size("512M"), 512 << 20)
        self.assertEqual(ttsm.parse_size("1.5G"), 3 << 29)
        self.assertEqual(ttsm.parse_size(1234), 1234)
        self.assertEqual(ttsm.parse_size("100"), 100)
        for bad in ("lots", "8X", "-1", "", 1.5, True, "1.5"):
            with self.assertRaises(ttsm.TTSInvalidArgumentError, msg=bad):
                ttsm.parse_size(bad)
        self.assertEqual(ttsm.parse_duration("5m"), 300000)
        self.assertEqual(ttsm.parse_duration(1.5), 1500)
        self.assertEqual(ttsm.parse_duration("250ms"), 250)
        self.assertEqual(ttsm.parse_duration(None), 0)
        with self.assertRaises(ttsm.TTSInvalidArgumentError):
            ttsm.parse_duration("soon")


class Errors(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ttsm-err-")
        self.mgr = ttsm.Manager(models_dir=self.tmp, hf_cache=os.path.join(self.tmp, "hub"))

    def tearDown(self):
        self.mgr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def raises(self, cls, fn, *needles):
        with self.assertRaises(cls) as cm:
            fn()
        e = cm.exception
        self.assertIs(type(e), cls)
        self.assertEqual(e.code, cls._default_code)
        for n in needles:
            self.assertIn(n, e.message)
        return e

    def test_hierarchy_matches_the_library(self):
        S = ttsm.Status
        for code, cls in ttsm.errors.CLASS_OF.items():
            self.assertEqual(cls._default_code, code)
            for cat, ccls in ttsm.errors.CLASS_OF.items():
                self.assertEqual(issubclass(cls, ccls), bool(ttsm._c.ttsm_status_is(code, cat)),
                                 (code, cat))
            self.assertEqual(ttsm._c.ttsm_status_name(code).decode(), "TTSM_" + code.name)
        self.assertTrue(issubclass(ttsm.TTSOutOfMemoryError, ttsm.TTSDeviceError))
        self.assertTrue(issubclass(ttsm.TTSInvalidArgumentError, ValueError))
        self.assertFalse(issubclass(ttsm.TTSInvalidArgumentError, ttsm.TTSModelLoadingError))
        self.assertFalse(issubclass(ttsm.TTSCancelledError, ttsm.TTSModelLoadingError))
        self.assertEqual(len(ttsm.errors.CLASS_OF), len(S) - 1)

    def test_not_found(self):
        e = self.raises(ttsm.TTSModelNotFoundError, lambda: self.mgr.load("no-such-engine"),
                        "no-such-engine", "engine not found")
        self.assertEqual(e.code, ttsm.Status.ERR_NOT_FOUND)
        self.assertIsInstance(e, ttsm.TTSModelLoadingError)
        missing = os.path.join(self.tmp, "missing.safetensors")
        self.raises(ttsm.TTSModelNotFoundError,
                    lambda: self.mgr.load("file", model_path=missing, device="cpu"), missing)

    def test_not_found_with_fallback_attempts(self):
        e = self.raises(ttsm.TTSModelNotFoundError,
                        lambda: self.mgr.load("chatterbox", language="fr", device="cpu"),
                        "chatterbox/French", "t3_cfg", self.tmp)
        self.assertGreaterEqual(len(e.attempts), 2)
        self.assertEqual(e.attempts[0].code, ttsm.Status.ERR_NOT_FOUND)
        self.assertIn("French", e.attempts[0].message)
        self.assertIn("English", e.attempts[-1].message)
        # The hint gives the exact folder and the repo to download from.
        self.assertIn("put t3_cfg.safetensors in %s/TTS/chatterbox/French/" % self.tmp, e.hint)
        self.assertIn("from Thomcles/Chatterbox-TTS-French", e.hint)
        self.assertIn("attempt 2: [TTSM_ERR_NOT_FOUND]", str(e))
        back = pickle.loads(pickle.dumps(e))
        self.assertIs(type(back), ttsm.TTSModelNotFoundError)
        self.assertEqual((back.code, back.message, back.hint, back.attempts),
                         (e.code, e.message, e.hint, e.attempts))

    def test_device(self):
        e = self.raises(ttsm.TTSDeviceError,
                        lambda: self.mgr.load("file", model_path=SCALAR, device="mps"), "mps")
        self.assertNotIsInstance(e, ttsm.TTSOutOfMemoryError)

    def test_out_of_memory(self):
        with ttsm.Manager(budgets={"cpu": 1000}) as mgr:
            e = self.raises(ttsm.TTSOutOfMemoryError,
                            lambda: mgr.load("file", model_path=MNIST, device="cpu"),
                            "over budget", "budget 1000")
            self.assertIsInstance(e, ttsm.TTSDeviceError)
            self.assertIsInstance(e, ttsm.TTSModelLoadingError)
            self.assertEqual(mgr.stats().failures, 1)
            self.assertEqual(mgr.loaded(), [])

    def test_format(self):
        bad = os.path.join(FIXTURES, "safetensors", "bad_json_syntax.safetensors")
        self.raises(ttsm.TTSModelFormatError,
                    lambda: self.mgr.load("file", model_path=bad, device="cpu"), bad)
        abuse = os.path.join(THIRD_PARTY, "safetensors", "safetensors-cpp_abuse_attempt_1.safetensors")
        self.raises(ttsm.TTSModelFormatError,
                    lambda: self.mgr.load("file", model_path=abuse, device="cpu"), abuse)
        evil = os.path.join(FIXTURES, "torch", "malicious", "os_system.pt")
        self.raises(ttsm.TTSModelFormatError,
                    lambda: self.mgr.load("file", model_path=evil, device="cpu"), evil)

    def test_io(self):
        self.raises(ttsm.TTSModelIOError,
                    lambda: self.mgr.load("file", model_path="/dev/null", device="cpu"),
                    "/dev/null", "not a regular file")

    def test_engine(self):
        with self.mgr.load("file", model_path=SCALAR, device="cpu") as m:
            e = self.raises(ttsm.TTSEngineError, lambda: m.synthesize("hello"),
                            "cannot synthesise here")
            self.assertIn("state_dict", e.hint)

    def test_invalid_argument(self):
        with self.mgr.load("file", model_path=SCALAR, device="cpu") as m:
            with self.assertRaises(ValueError):  # a plain ValueError handler catches it
                m.synthesize("")
            e = self.raises(ttsm.TTSInvalidArgumentError, lambda: m.synthesize(""),
                            "the text is empty")
            self.assertNotIsInstance(e, ttsm.TTSModelLoadingError)
            self.raises(ttsm.TTSInvalidArgumentError, lambda: m.tensors("nope"), "nope")
        self.raises(ttsm.TTSInvalidArgumentError, lambda: ttsm.cache_key(""), "engine")
        self.raises(ttsm.TTSInvalidArgumentError, lambda: ttsm.Manager(budgets={"cpu": "lots"}),
                    "lots")
        self.raises(ttsm.TTSInvalidArgumentError, lambda: ttsm.Manager(io_mode="fast"), "fast")
        self.raises(ttsm.TTSInvalidArgumentError,
                    lambda: self.mgr.load("file", model_path="a\0b"), "NUL")

    def test_cancelled(self):
        seen = []

        def stop(key, done, total):
            seen.append((key, done, total))
            return True
        with ttsm.Manager(progress=stop) as mgr:
            e = self.raises(ttsm.TTSCancelledError,
                            lambda: mgr.load("file", model_path=MNIST, device="cpu"),
                            "cancelled")
            self.assertNotIsInstance(e, ttsm.TTSModelLoadingError)
            self.assertEqual(len(seen), 1)
            self.assertEqual(seen[0][0], ttsm.cache_key("file", model_path=MNIST, device="cpu"))
            self.assertEqual(seen[0][2], os.path.getsize(MNIST) - 8 - 1520)
            self.assertEqual(mgr.loaded(), [])

        def broken(key, done, total):
            raise KeyError("progress bug")
        with ttsm.Manager(progress=broken) as mgr:
            with self.assertRaises(ttsm.TTSCancelledError) as cm:
                mgr.load("file", model_path=MNIST, device="cpu")
            self.assertIsInstance(cm.exception.__cause__, KeyError)

        with ttsm.Manager(progress=lambda *a: None) as mgr:
            with mgr.load("file", model_path=MNIST, device="cpu") as m:
                self.assertEqual(len(m.state_dict()), 20)


class Lifetime(unittest.TestCase):
    def test_tensors_outlive_model_and_manager(self):
        want, _ = read_safetensors(MNIST)
        mgr = ttsm.Manager()
        m = mgr.load("file", model_path=MNIST, device="cpu")
        sd = m.state_dict()
        views = m.tensors()
        m.close()
        mgr.close()
        del m, mgr
        gc.collect()
        for name, (_, _, data) in want.items():
            self.assertEqual(tensor_bytes(sd[name]), data, name)
        x = views["fc1.weight"].to_torch()  # exports still work from an orphan
        self.assertEqual(tensor_bytes(x), want["fc1.weight"][2])
        del sd, views
        gc.collect()
        self.assertEqual(tensor_bytes(x), want["fc1.weight"][2])
        del x
        gc.collect()

    def test_references_drop_to_zero(self):
        with ttsm.Manager() as mgr:
            m = mgr.load("file", model_path=MNIST, device="cpu")
            self.assertEqual(refs(mgr), 1)
            sd = m.state_dict()
            self.assertEqual(refs(mgr), 1 + 20)  # one per torch tensor
            row = sd["fc1.weight"][3]  # a view keeps its storage, hence the model
            ts = m.tensors()
            self.assertEqual(refs(mgr), 1 + 20 + 20)
            del ts
            gc.collect()
            self.assertEqual(refs(mgr), 1 + 20)
            del sd
            gc.collect()
            self.assertEqual(refs(mgr), 2)
            m.close()
            m.close()  # idempotent
            self.assertEqual(refs(mgr), 1)
            self.assertEqual(float(row[0]), float(row[0]))
            del row
            gc.collect()
            self.assertEqual(refs(mgr), 0)
            self.assertEqual(mgr.loaded()[0].bytes, os.path.getsize(MNIST) - 8 - 1520)
            with self.assertRaises(ValueError):
                m.state_dict()
            # Cycles are collected too.
            m = mgr.load("file", model_path=MNIST, device="cpu")
            cycle = [m, m.state_dict(), m.tensors()]
            cycle.append(cycle)
            del m, cycle
            self.assertGreater(refs(mgr), 0)
            gc.collect()
            self.assertEqual(refs(mgr), 0)
            mgr.unload(mgr.loaded()[0].key)
            self.assertEqual(mgr.loaded(), [])

    def test_context_managers_and_closed_manager(self):
        mgr = ttsm.Manager()
        with mgr.load("file", model_path=MNIST, device="cpu") as m:
            key = m.key
            self.assertEqual(mgr.loaded()[0].refs, 1)
        self.assertTrue(m.closed)
        self.assertEqual(mgr.loaded()[0].refs, 0)
        m = mgr.load("file", model_path=MNIST, device="cpu")
        self.assertEqual(mgr.stats().hits, 1)
        with mgr:
            pass
        self.assertTrue(mgr.closed)
        # A closed manager raises from the error hierarchy (and is a ValueError).
        for call in (mgr.loaded, mgr.stats, lambda: mgr.load("file", model_path=MNIST)):
            with self.assertRaises(ttsm.TTSInvalidArgumentError) as cm:
                call()
            self.assertIsInstance(cm.exception, ttsm.TTSError)
            self.assertIsInstance(cm.exception, ValueError)
            self.assertEqual(cm.exception.code, ttsm.Status.ERR_INVALID_ARGUMENT)
            self.assertIn("the manager is closed", cm.exception.message)
        # The model outlives its manager: an orphan, fully usable.
        self.assertEqual(m.key, key)
        self.assertEqual(len(m.state_dict()), 20)
        self.assertEqual(m.metadata, {"burn_mnist": {}})
        m.close()

    def test_invalidate_keeps_holders(self):
        with ttsm.Manager() as mgr:
            m = mgr.load("file", model_path=MNIST, device="cpu")
            sd = m.state_dict()
            m.close()
            mgr.invalidate(m.key)
            s = mgr.stats()
            self.assertEqual((s.entries, s.orphans), (0, 1))
            self.assertEqual(s.devices["cpu"].in_use, m.bytes)
            self.assertEqual(float(sd["fc1.bias"].sum()), float(sd["fc1.bias"].sum()))
            del sd
            gc.collect()
            s = mgr.stats()
            self.assertEqual((s.orphans, s.devices["cpu"].in_use), (0, 0))

    def test_verify_on_load(self):
        """The identity rule (docs/manager.md): a same-size rewrite in place
        with its modification time put back is not seen, and read mode serves
        the bytes it read even after invalidate; verify_on_load sees it."""
        d = tempfile.mkdtemp()
        try:
            path = os.path.join(d, "w.safetensors")
            for verify in (False, True):
                write_safetensors(path, {"w": torch.full((64,), 1.0)})
                with ttsm.Manager(io_mode="read", verify_on_load=verify) as mgr:
                    m = mgr.load("file", model_path=path, device="cpu")
                    held = m.state_dict()  # keeps the checkpoint open after invalidate
                    key = m.key
                    m.close()
                    st = os.stat(path)
                    write_safetensors(path, {"w": torch.full((64,), 42.0)})
                    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                    self.assertEqual(os.stat(path).st_size, st.st_size)
                    mgr.invalidate(key)
                    with mgr.load("file", model_path=path, device="cpu") as m2:
                        got = float(m2.state_dict()["w"][0])
                    self.assertEqual(got, 42.0 if verify else 1.0, "verify_on_load=%s" % verify)
                    del held
        finally:
            shutil.rmtree(d)

    def test_keep_alive_and_budget_eviction(self):
        with ttsm.Manager(keep_alive="20ms") as mgr:
            mgr.load("file", model_path=MNIST, device="cpu").close()
            self.assertEqual(len(mgr.loaded()), 1)
            time.sleep(0.1)
            self.assertEqual(mgr.sweep(), 1)
            self.assertEqual(mgr.loaded(), [])
        size = os.path.getsize(MNIST)
        fill = os.path.join(self.make_tmp(), "fill.safetensors")
        write_safetensors(fill, {"x": torch.zeros((size - 2000) // 4, dtype=torch.float32)})
        with ttsm.Manager(budgets={"cpu": size}) as mgr:
            a = mgr.load("file", model_path=MNIST, device="cpu")
            with self.assertRaises(ttsm.TTSOutOfMemoryError) as cm:
                mgr.load("file", model_path=fill, device="cpu")
            self.assertIn("referenced", str(cm.exception))  # what holds the budget
            a.close()  # unreferenced now: evicted to make room
            b = mgr.load("file", model_path=fill, device="cpu")
            self.assertEqual(mgr.stats().evictions, 1)
            self.assertEqual([e.model for e in mgr.loaded()], [fill])
            self.assertLessEqual(mgr.stats().devices["cpu"].peak, size)
            b.close()

    def make_tmp(self):
        d = tempfile.mkdtemp(prefix="ttsm-life-")
        self.addCleanup(shutil.rmtree, d, True)
        return d


class Threads(unittest.TestCase):
    def test_one_load_for_many_threads(self):
        n = 8
        with ttsm.Manager() as mgr:
            barrier = threading.Barrier(n)
            models, errors = [None] * n, []

            def work(i):
                try:
                    barrier.wait()
                    models[i] = mgr.load("file", model_path=MNIST, device="cpu")
                except Exception as e:  # pragma: no cover - reported below
                    errors.append(e)
            threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            s = mgr.stats()
            self.assertEqual((s.loads, s.misses, s.hits, s.checkpoint_opens), (1, 1, n - 1, 1))
            self.assertEqual(len({m.key for m in models}), 1)
            self.assertEqual(mgr.loaded()[0].refs, n)
            # Tensors taken and dropped from many threads at once.
            def take(m):
                for _ in range(20):
                    sd = m.state_dict()
                    del sd
            threads = [threading.Thread(target=take, args=(m,)) for m in models]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            gc.collect()
            self.assertEqual(mgr.loaded()[0].refs, n)
            for m in models:
                m.close()
            self.assertEqual(mgr.loaded()[0].refs, 0)


class TorchModules(unittest.TestCase):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 6)
            self.conv = torch.nn.Conv1d(6, 4, 3)
            self.norm = torch.nn.BatchNorm1d(4)
            self.head = torch.nn.Linear(4, 3)
            self.register_buffer("scale", torch.tensor([0.5, 2.0, 1.0]))

        def forward(self, tokens):
            x = self.embed(tokens).transpose(1, 2)
            x = self.norm(self.conv(x)).mean(dim=2)
            return self.head(x) * self.scale

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ttsm-module-")
        torch.manual_seed(7)
        self.src = self.Net()
        self.src.train()
        self.src(torch.randint(0, 10, (5, 8)))  # running stats become non-trivial
        self.src.eval()
        self.tokens = torch.randint(0, 10, (2, 8))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_module(self, sd):
        torch.manual_seed(99)
        dst = self.Net().eval()
        self.assertNotEqual(tensor_bytes(dst.head.weight), tensor_bytes(self.src.head.weight))
        result = dst.load_state_dict(sd, strict=True)
        self.assertEqual((result.missing_keys, result.unexpected_keys), ([], []))
        for k, v in self.src.state_dict().items():
            self.assertEqual(tensor_bytes(dst.state_dict()[k]), tensor_bytes(v), k)
        self.assertTrue(torch.equal(dst(self.tokens), self.src(self.tokens)))
        broken = dict(sd)
        del broken["head.bias"]
        with self.assertRaises(RuntimeError):
            self.Net().load_state_dict(broken, strict=True)

    def test_load_state_dict_from_pytorch_and_safetensors(self):
        pt = os.path.join(self.tmp, "net.pt")
        torch.save(self.src.state_dict(), pt)
        st = os.path.join(self.tmp, "net.safetensors")
        write_safetensors(st, self.src.state_dict(), {"format": "pt"})
        with ttsm.Manager() as mgr:
            for path in (pt, st):
                with mgr.load("file", model_path=path, device="cpu") as m:
                    sd = m.state_dict()
                    self.assertEqual(sd["norm.num_batches_tracked"].dtype, torch.int64)
                    self.check_module(sd)
            with mgr.load("file", model_path=st, device="cpu") as m:
                self.assertEqual(m.metadata, {"net": {"format": "pt"}})

    def test_components_become_submodules(self):
        """A folder of checkpoints: state_dict() prefixes each component's names."""
        folder = os.path.join(self.tmp, "pair")
        os.makedirs(folder)
        torch.manual_seed(3)
        pair = torch.nn.ModuleDict({"dec": torch.nn.Linear(3, 2), "enc": torch.nn.Linear(4, 3)})
        torch.save(pair["dec"].state_dict(), os.path.join(folder, "dec.pt"))
        write_safetensors(os.path.join(folder, "enc.safetensors"), pair["enc"].state_dict())
        with ttsm.Manager() as mgr, mgr.load("file", model_path=folder, device="cpu") as m:
            self.assertEqual(m.components, ["dec", "enc"])
            self.assertEqual([m.component_info(c).format for c in m.components],
                             ["pytorch-zip", "safetensors"])
            sd = m.state_dict()
            self.assertEqual(sorted(sd), ["dec.bias", "dec.weight", "enc.bias", "enc.weight"])
            other = torch.nn.ModuleDict({"dec": torch.nn.Linear(3, 2),
                                         "enc": torch.nn.Linear(4, 3)})
            other.load_state_dict(sd, strict=True)
            x = torch.ones(1, 4)
            self.assertTrue(torch.equal(other["dec"](other["enc"](x)),
                                        pair["dec"](pair["enc"](x))))
            self.assertEqual(sorted(m.state_dict("enc")), ["bias", "weight"])
            with self.assertRaises(ttsm.TTSInvalidArgumentError):
                m.tensors()  # two tensor components: name one


class Synthesis(unittest.TestCase):
    def test_espeak_speaks(self):
        with ttsm.Manager() as mgr, mgr.load("espeak-ng") as m:
            self.assertEqual((m.engine_name, m.device), ("espeak-ng", "cpu"))
            self.assertTrue(all(m.component_info(c).kind == "blob" for c in m.components))
            audio, rate = m.synthesize("Hello from the ttsm Python binding.")
            self.assertEqual(rate, 22050)
            self.assertIsInstance(audio, numpy.ndarray)
            self.assertEqual(audio.dtype, numpy.int16)
            self.assertEqual(audio.ndim, 1)
            seconds = len(audio) / rate
            self.assertTrue(1.0 < seconds < 6.0, seconds)
            rms = float(numpy.sqrt(numpy.mean(audio.astype(numpy.float64) ** 2)))
            self.assertGreater(rms, 300)
            self.assertGreater(int(numpy.abs(audio.astype(numpy.int32)).max()), 3000)
            # Speech has pauses: some 10 ms windows are much quieter than others.
            win = audio[: len(audio) // 220 * 220].astype(numpy.float64).reshape(-1, 220)
            energy = numpy.sqrt((win ** 2).mean(axis=1))
            self.assertLess(energy.min(), energy.max() / 20)
            fast, _ = m.synthesize("Hello from the ttsm Python binding.", rate=350)
            self.assertLess(len(fast), len(audio) * 0.8)
            de, _ = m.synthesize("Guten Tag, wie geht es Ihnen?", language="de")
            self.assertGreater(len(de), rate // 2)
            with self.assertRaises(ttsm.TTSModelNotFoundError):
                m.synthesize("hello", voice="no-such-voice-xyz")
            # espeak-ng's own voice ids, and the list of them.
            us, _ = m.synthesize("Howdy", voice="en-us")
            self.assertGreater(len(us), rate // 4)
            v = [x for x in m.voices() if "en-us" in x["languages"]]
            self.assertEqual(v[0]["id"], "gmw/en-US")
        with ttsm.Manager() as mgr, mgr.load("file", model_path=MNIST, device="cpu") as m:
            with self.assertRaises(ttsm.TTSEngineError):
                m.voices()


class Fallbacks(unittest.TestCase):
    """Model.attempts and Model.fallback: what a load tried, and whether it
    returned another model than the one asked for (docs/python.md)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ttsm-fb-")
        self.models = os.path.join(self.tmp, "models")
        shutil.copytree(os.path.join(SRC, "examples", "models"), self.models)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_report_struct_matches_the_library(self):
        from ttsm import _lib
        r = _lib.LoadReport()
        _lib.lib.ttsm_load_report_init(ctypes.byref(r))
        self.assertEqual(r.struct_size, ctypes.sizeof(_lib.LoadReport))

    def test_attempts_and_fallback(self):
        os.remove(os.path.join(self.models, "TTS", "chatterbox", "French", "t3_cfg.safetensors"))
        with ttsm.Manager(models_dir=self.models, hf_cache=os.path.join(self.tmp, "hub")) as mgr:
            with mgr.load("chatterbox", language="fr", device="cpu") as m:
                self.assertEqual(m.name, "English")
                self.assertEqual(m.fallback.asked, "French")
                self.assertEqual(m.fallback.loaded, "English")
                self.assertEqual(m.fallback.loaded_device, "cpu")
                self.assertIn("file not found: t3_cfg.safetensors", m.fallback.why)
                self.assertEqual([(a.model, a.code) for a in m.attempts],
                                 [("French", ttsm.Status.ERR_NOT_FOUND),
                                  ("English", ttsm.Status.OK)])
                self.assertEqual(m.attempts[1].message, "")
            # English asked for: the same entry, and no fallback.
            with mgr.load("chatterbox", device="cpu") as e:
                self.assertIsNone(e.fallback)
                self.assertEqual([a.code for a in e.attempts], [ttsm.Status.OK])

    def test_comfyui_folder(self):
        comfy = os.path.join(self.tmp, "ComfyUI")
        os.makedirs(os.path.join(comfy, "voices"))
        os.rename(os.path.join(self.models, "TTS"), os.path.join(comfy, "voices", "TTS"))
        with open(os.path.join(comfy, "extra_model_paths.yaml"), "w") as f:
            f.write("mine:\n  base_path: voices\n  TTS: TTS\n")
        with ttsm.Manager(comfyui=[comfy], hf_cache=os.path.join(self.tmp, "hub")) as mgr:
            with mgr.load("chatterbox", device="cpu") as m:
                self.assertIsNone(m.fallback)
                self.assertTrue(m.component_info("t3_cfg").path.startswith(
                    os.path.realpath(os.path.join(comfy, "voices", "TTS"))))


class CacheKeys(unittest.TestCase):
    def test_key_is_the_models_and_the_clis(self):
        with ttsm.Manager() as mgr, mgr.load("file", model_path=MNIST, device="cpu") as m:
            self.assertEqual(ttsm.cache_key("file", model_path=MNIST, device="cpu"), m.key)
        rel = os.path.relpath(MNIST)
        self.assertEqual(ttsm.cache_key("file", model_path=rel, device="cpu"), m.key)
        if CLI:
            out = subprocess.run([CLI, "key", "file", "--model-path", MNIST, "--device", "cpu"],
                                 capture_output=True, text=True)
            self.assertEqual(out.stdout.strip(), m.key, out.stderr)
            out = subprocess.run([CLI, "key", "file", "--model-path", MNIST, "--device",
                                  "cpu", "--param", "b=2", "--param", "a=1"],
                                 capture_output=True, text=True)
            self.assertEqual(ttsm.cache_key("file", model_path=MNIST, device="cpu", b=2, a="1"),
                             out.stdout.strip())
            out = subprocess.run([CLI, "key", "chatterbox", "--language", "fr", "--device",
                                  "cpu"], capture_output=True, text=True)
            self.assertEqual(ttsm.cache_key("ChatterBox", language="French", device="cpu"),
                             out.stdout.strip())
        # Params of a manifest engine: checked, defaults filled in (one key).
        self.assertEqual(ttsm.cache_key("chatterbox_official_23lang", device="cpu"),
                         ttsm.cache_key("chatterbox_official_23lang", device="cpu",
                                        model_version="v2"))
        with self.assertRaises(ttsm.TTSInvalidArgumentError):
            ttsm.cache_key("chatterbox_official_23lang", device="cpu", model_version="v9")
        self.assertEqual(ttsm.cache_key("chatterbox", language="English", device="cpu"),
                         ttsm.cache_key("chatterbox", language="en", device="cpu"))
        self.assertNotEqual(ttsm.cache_key("chatterbox", language="fr", device="cpu"),
                            ttsm.cache_key("chatterbox", language="en", device="cpu"))
        if ttsm.cuda_status():  # no CUDA here: auto is cpu, and one key
            self.assertEqual(ttsm.cache_key("chatterbox", device="auto"),
                             ttsm.cache_key("chatterbox", device="cpu"))
        canon = ttsm.cache_key_canonical("file", model_path=MNIST, device="cpu", z=True)
        self.assertTrue(canon.startswith("ttsm-key-v1"), canon)
        self.assertIn(os.path.realpath(MNIST), canon)
        self.assertIn("z=true", canon)


if __name__ == "__main__":
    unittest.main()
