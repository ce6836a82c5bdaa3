"""test_dlpack.py - tensors through DLPack, checked against independent readings.

Every valid safetensors fixture (ours, the sharded index, the third-party files)
and every PyTorch fixture (freshly written by this torch, the committed ones, the
third-party ones), in mmap and read mode: names, dtypes, shapes, strides and the
bytes of every tensor equal an independent reading (struct+json for safetensors,
torch.load(weights_only=True) for PyTorch), through torch where this torch has the
dtype, else NumPy, else the raw bytes; the DLPack structs carry the right type
codes; the torch tensor's data_ptr() is the C pointer, and in mmap mode that
address lies in a private mapping of the checkpoint file itself (zero copy); a
write into such a tensor never reaches the file. The capsule protocol (legacy and
versioned, flags, refusals, unconsumed capsules) and CUDA export through the
stand-in driver.
"""
import ctypes
import gc
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest
import zipfile

from ttsm_testutil import (DL_TYPES, NUMPY_TYPES, SRC, SUB_BYTE, FIXTURES, THIRD_PARTY,
                           fakecuda_path, gen, mapping_of, numpy, read_safetensors,
                           read_sharded, safetensors_files, tensor_bytes, torch, torch_dtype,
                           torch_files, torch_load, ttsm)
from ttsm import _dlpack

# Own prototypes: the shared ctypes.pythonapi objects are not ours to configure.
capsule_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi))
capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))


def managed_versioned(cap):
    p = capsule_pointer(cap, b"dltensor_versioned")
    return _dlpack.DLManagedTensorVersioned.from_address(p)


def refs(mgr):
    return sum(e.refs for e in mgr.loaded())


def stored_only(path):
    """True when every tensor byte of a PyTorch file lies in the file as is."""
    if not zipfile.is_zipfile(path):
        return True  # legacy format: raw storages
    with zipfile.ZipFile(path) as z:
        return all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())


class SafetensorsThroughDLPack(unittest.TestCase):
    def check_tensor(self, t, want_dtype, want_shape, want_bytes, path, io_mode):
        what = "%s %s: %s" % (io_mode, path, t.name)
        self.assertEqual(t.dtype, want_dtype, what)
        self.assertEqual(list(t.shape), want_shape, what)
        self.assertEqual(t.nbytes, len(want_bytes), what)
        # The raw bytes, whatever the dtype.
        raw = torch.from_dlpack(t.raw())
        self.assertEqual(raw.dtype, torch.uint8)
        self.assertEqual(raw.numpy().tobytes(), want_bytes, what)
        if t.nbytes:
            self.assertEqual(raw.data_ptr(), t.data_ptr, what)
            path_of, perms = mapping_of(t.data_ptr)
            if io_mode == "mmap":
                # Zero copy: the address is inside a private mapping of the file.
                self.assertEqual(os.path.realpath(path_of), os.path.realpath(t.file), what)
                self.assertTrue(perms.endswith("p"), (what, perms))
            else:
                self.assertNotEqual(path_of, os.path.realpath(t.file), what)
        # The versioned struct: type code, shape, strides, pointer, read-only.
        if want_dtype in SUB_BYTE:
            with self.assertRaises(ttsm.TTSInvalidArgumentError) as cm:
                t.__dlpack__(max_version=(1, 1))
            self.assertIn("sub-byte dtype %s" % want_dtype, str(cm.exception))
            self.assertIn("Tensor.raw()", cm.exception.hint)
            return "raw"
        cap = t.__dlpack__(max_version=(1, 1))
        m = managed_versioned(cap)
        self.assertEqual((m.version.major, m.version.minor), (1, 1))
        self.assertEqual(m.flags, _dlpack.FLAG_READ_ONLY)
        dl = m.dl_tensor
        self.assertEqual((dl.dtype.code, dl.dtype.bits, dl.dtype.lanes),
                         DL_TYPES[want_dtype] + (1,), what)
        self.assertEqual((dl.device.device_type, dl.device.device_id), (1, 0))
        self.assertEqual([dl.shape[i] for i in range(dl.ndim)], want_shape, what)
        numel = 1
        for s in want_shape:
            numel *= s
        # Never NULL (PyTorch 1.13 would not call the deleter of a NULL tensor).
        self.assertTrue(dl.data, what)
        if numel:
            self.assertEqual(dl.data, t.data_ptr, what)
        del cap, m, dl
        # The typed value, through the richest consumer that has the dtype.
        if torch_dtype(want_dtype) is not None:
            x = t.to_torch()
            self.assertEqual(x.dtype, torch_dtype(want_dtype), what)
            self.assertEqual(list(x.shape), want_shape, what)
            self.assertEqual(tensor_bytes(x), want_bytes, what)
            if numel:
                self.assertEqual(x.data_ptr(), t.data_ptr, what)
            return "torch"
        with self.assertRaises(ttsm.TTSUnsupportedDtypeError) as cm:
            t.to_torch()
        self.assertIn("dtype %s" % want_dtype, str(cm.exception))
        if want_dtype in NUMPY_TYPES:
            a = numpy.from_dlpack(t)
            self.assertEqual(a.dtype, numpy.dtype(NUMPY_TYPES[want_dtype]), what)
            self.assertEqual(list(a.shape), want_shape, what)
            self.assertEqual(a.tobytes(), want_bytes, what)
            if numel:
                self.assertEqual(a.__array_interface__["data"][0], t.data_ptr, what)
            return "numpy"
        return "raw"

    def test_every_safetensors_fixture(self):
        files = safetensors_files()
        self.assertGreaterEqual(len(files), 16)
        routes = {}
        for path in files:
            if path.endswith(".index.json"):
                want = read_sharded(path)
                meta = None
            else:
                want, meta = read_safetensors(path)
            for io_mode in ("mmap", "read"):
                with self.subTest(path=path, io_mode=io_mode), \
                        ttsm.Manager(io_mode=io_mode) as mgr, \
                        mgr.load("file", model_path=path, device="cpu") as m:
                    self.assertEqual(len(m.components), 1)
                    info = m.component_info()
                    self.assertEqual(info.kind, "tensors")
                    tensors = m.tensors()
                    self.assertEqual(refs(mgr), 1 + len(tensors))  # each Tensor holds one
                    self.assertEqual(sorted(tensors), sorted(want))
                    for name, t in tensors.items():
                        dt, shape, data = want[name]
                        # the shard (or file) the bytes come from
                        t.file = path if meta is not None else os.path.join(
                            os.path.dirname(path), self.shard_of(path, name))
                        r = self.check_tensor(t, dt, shape, data, path, io_mode)
                        routes[dt] = r
                    if meta is not None:
                        self.assertEqual(m.metadata[info.name], meta, path)
                    del tensors
                    t = None

                    gc.collect()
                    self.assertEqual(refs(mgr), 1)
        # Every route was taken: what this torch has, what only NumPy has, raw bytes.
        self.assertEqual(routes.get("F32"), "torch")
        self.assertIn(routes.get("U16"), ("torch", "numpy"))
        self.assertEqual(routes.get("F4"), "raw")

    @staticmethod
    def shard_of(index_path, name):
        import json
        with open(index_path) as f:
            return json.load(f)["weight_map"][name]


class TorchFilesThroughDLPack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ttsm-dlpack-")
        cls.fresh = os.path.join(cls.tmp, "fresh")
        gen.main(["gen", cls.fresh])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_pytorch_fixture(self):
        files = torch_files(self.fresh)
        self.assertGreaterEqual(len(files), 30)
        total_mapped = [0]
        for path, ours in files:
            want_t, want_m = gen.flatten(torch_load(path, ours))
            for io_mode in ("mmap", "read"):
                with self.subTest(path=path, io_mode=io_mode), \
                        ttsm.Manager(io_mode=io_mode) as mgr, \
                        mgr.load("file", model_path=path, device="cpu") as m:
                    sd = m.state_dict()
                    self.assertEqual(sorted(sd), sorted(want_t), path)
                    views = m.tensors()
                    by_storage = {}
                    mapped = 0
                    got = None
                    for name, want in want_t.items():
                        got = sd[name]
                        what = "%s %s: %s" % (io_mode, path, name)
                        self.assertEqual(got.dtype, want.dtype, what)
                        self.assertEqual(got.shape, want.shape, what)
                        if want.numel() > 1:
                            self.assertEqual(got.stride(), want.stride(), what)
                        self.assertEqual(tensor_bytes(got), tensor_bytes(want), what)
                        if not want.numel():
                            continue
                        self.assertEqual(got.data_ptr(), views[name].data_ptr, what)
                        if io_mode == "mmap" and stored_only(path):
                            mp, _ = mapping_of(got.data_ptr())
                            self.assertEqual(os.path.realpath(mp), os.path.realpath(path), what)
                            mapped += 1
                        # Tensors sharing a torch storage share memory here too,
                        # at the same distance.
                        key = want.storage().data_ptr()
                        off = want.storage_offset() * want.element_size()
                        by_storage.setdefault(key, []).append((got.data_ptr(), off, name))
                    for group in by_storage.values():
                        base = group[0][0] - group[0][1]
                        for ptr, off, name in group:
                            self.assertEqual(ptr - off, base, "%s: %s" % (path, name))
                    if io_mode == "mmap" and stored_only(path):
                        self.assertEqual(mapped, sum(1 for t in want_t.values() if t.numel()))
                        total_mapped[0] += mapped
                    meta = {k: (ty, v) for k, ty, v in m.metadata_entries()}
                    self.assertEqual(meta, want_m, path)
                    del sd, views, got
                    gc.collect()
                    self.assertEqual(refs(mgr), 1, path)
        self.assertGreater(total_mapped[0], 100)  # the mapping check really ran

    def test_strided_and_shared_views_share_memory(self):
        path = os.path.join(self.fresh, "views.pt")
        with ttsm.Manager() as mgr, mgr.load("file", model_path=path, device="cpu") as m:
            sd = m.state_dict()
            self.assertEqual(sd["transposed"].stride(), (1, 6))
            self.assertEqual(sd["expanded"].stride(), (0, 1))
            self.assertFalse(sd["transposed"].is_contiguous())
        path = os.path.join(self.fresh, "shared.pt")
        with ttsm.Manager() as mgr, mgr.load("file", model_path=path, device="cpu") as m:
            sd = m.state_dict()
            self.assertEqual(sd["embed.weight"].data_ptr(), sd["lm_head.weight"].data_ptr())
            sd["embed.weight"][0, 0] = 42.0  # tied weights stay tied: one memory
            self.assertEqual(float(sd["lm_head.weight"][0, 0]), 42.0)


class ZeroCopyWrites(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ttsm-write-")
        self.path = os.path.join(self.tmp, "w.safetensors")
        shutil.copy(os.path.join(THIRD_PARTY, "safetensors", "burn_mnist.safetensors"),
                    self.path)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def digest(self):
        with open(self.path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def test_write_into_mmap_tensor_never_reaches_the_file(self):
        before = self.digest()
        want, _ = read_safetensors(self.path)
        name = "conv1.weight"
        with ttsm.Manager(io_mode="mmap") as mgr:
            m = mgr.load("file", model_path=self.path, device="cpu")
            w = m.state_dict()[name]
            mp, perms = mapping_of(w.data_ptr())
            self.assertEqual(mp, os.path.realpath(self.path))
            self.assertEqual(perms[:2] + perms[3], "rwp")  # private, copy-on-write
            old = float(w.view(-1)[0])
            w.view(-1)[0] = 12345.0
            w.add_(1.0)
            self.assertEqual(float(w.view(-1)[0]), 12346.0)
            # The file is untouched, also after the mapping goes away.
            self.assertEqual(self.digest(), before)
            # Another export of the same cache entry sees the write: one memory.
            self.assertEqual(float(m.tensors()[name].to_torch().view(-1)[0]), 12346.0)
            # A fresh manager maps the file again and sees the original bytes.
            with ttsm.Manager() as other, other.load("file", model_path=self.path,
                                                     device="cpu") as m2:
                x = m2.state_dict()[name]
                self.assertEqual(tensor_bytes(x), want[name][2])
                self.assertEqual(float(x.view(-1)[0]), old)
            m.close()
            del w
            gc.collect()
        self.assertEqual(self.digest(), before)

    def test_read_only_flag_and_writable(self):
        with ttsm.Manager() as mgr, mgr.load("file", model_path=self.path, device="cpu") as m:
            t = m.tensors()["conv1.weight"]
            cap = t.__dlpack__(max_version=(1, 0))
            self.assertEqual(managed_versioned(cap).flags & 1, 1)
            del cap
            w = m.tensors(writable=True)["conv1.weight"]
            cap = w.__dlpack__(max_version=(1, 0))
            self.assertEqual(managed_versioned(cap).flags, 0)
            del cap


class CapsuleProtocol(unittest.TestCase):
    def setUp(self):
        self.mgr = ttsm.Manager()
        self.m = self.mgr.load("file", device="cpu", model_path=os.path.join(
            FIXTURES, "safetensors", "ok_all_dtypes.safetensors"))

    def tearDown(self):
        self.m.close()
        self.mgr.close()

    def test_legacy_and_versioned_capsules(self):
        t = self.m.tensors()["t_F32"]
        self.assertEqual(t.__dlpack_device__(), (1, 0))
        base = refs(self.mgr)
        cap = t.__dlpack__()
        self.assertTrue(capsule_valid(cap, b"dltensor"))
        self.assertEqual(refs(self.mgr), base + 1)  # each export holds a reference
        x = torch.from_dlpack(cap)
        self.assertTrue(capsule_valid(cap, b"used_dltensor"))
        del cap
        gc.collect()
        self.assertEqual(refs(self.mgr), base + 1)  # now torch's, until x dies
        del x
        gc.collect()
        self.assertEqual(refs(self.mgr), base)
        for mv, name in (((1, 0), b"dltensor_versioned"), ((2, 7), b"dltensor_versioned"),
                         ((0, 8), b"dltensor")):
            cap = t.__dlpack__(max_version=mv)
            self.assertTrue(capsule_valid(cap, name), mv)
            self.assertEqual(refs(self.mgr), base + 1)
            del cap  # never consumed: the destructor runs the deleter
            t._capsules = []
            gc.collect()
            self.assertEqual(refs(self.mgr), base)
        x = torch.from_dlpack(t)  # through __dlpack__/__dlpack_device__
        self.assertEqual(x.data_ptr(), t.data_ptr)
        cap = t.__dlpack__(stream=None)
        del cap

    def test_refusals(self):
        t = self.m.tensors()["t_F32"]
        base = refs(self.mgr)
        with self.assertRaises(BufferError):
            t.__dlpack__(copy=True)
        with self.assertRaises(BufferError):
            t.__dlpack__(dl_device=(2, 0))
        t.__dlpack__(dl_device=(1, 0), copy=False)
        t._capsules = []
        gc.collect()
        self.assertEqual(refs(self.mgr), base)
        t.close()
        with self.assertRaises(ValueError):
            t.__dlpack__()
        self.assertEqual(refs(self.mgr), base - 1)

    def test_consumer_failure_leaves_nothing(self):
        """torch 1.13 has no DLPack bool: the capsule it refuses is freed, and
        the binding's same-width route gives a torch.bool view of the same bytes."""
        t = self.m.tensors()["t_BOOL"]
        base = refs(self.mgr)
        try:
            torch.from_dlpack(t)
            native = True
        except RuntimeError:
            native = False
        t._capsules = []
        gc.collect()
        self.assertEqual(refs(self.mgr), base)
        x = t.to_torch()
        self.assertEqual(x.dtype, torch.bool)
        self.assertEqual(x.data_ptr(), t.data_ptr)
        if not native:
            self.assertEqual(ttsm.tensor._torch_modes["BOOL"], "bits")

    def test_block_quantised_raw_bytes(self):
        path = os.path.join(FIXTURES, "gguf", "valid_quant_align256.gguf")
        with self.mgr.load("file", model_path=path, device="cpu") as m:
            q = m.tensors()["q4_k"]
            self.assertEqual(q.dtype, "Q4_K")
            with self.assertRaises(ttsm.TTSInvalidArgumentError) as cm:
                q.to_torch()
            self.assertIn("block-quantised dtype Q4_K", str(cm.exception))
            self.assertNotIsInstance(cm.exception, ttsm.TTSModelLoadingError)
            r = q.raw()
            self.assertEqual((r.dtype, r.shape), ("U8", (q.nbytes,)))
            x = r.to_torch()
            self.assertEqual((x.dtype, x.numel(), x.data_ptr()), (torch.uint8, q.nbytes,
                                                                  q.data_ptr))
            mp, _ = mapping_of(x.data_ptr())
            self.assertEqual(mp, os.path.realpath(path))
            with open(path, "rb") as f:
                blob = f.read()
            self.assertIn(x.numpy().tobytes(), blob)
            self.assertEqual(m.metadata["valid_quant_align256"]["general.alignment"], 256)


class FakeCudaExport(unittest.TestCase):
    """CUDA export through the stand-in driver the C tests use (its device
    memory is host memory), in a child process: CUDA discovery runs once per
    process. PyTorch here has no CUDA, so it must refuse the tensor cleanly."""

    def test_cuda_tensor_is_kDLCUDA(self):
        drv = fakecuda_path()
        if drv is None:
            self.skipTest("run through ctest: $TTSM_BUILD/tests/libfakecuda.so is needed")
        tmp = tempfile.mkdtemp(prefix="ttsm-fakecuda-")
        self.addCleanup(shutil.rmtree, tmp, True)
        header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
        header += b" " * (-len(header) % 8)
        path = os.path.join(tmp, "w.safetensors")
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header +
                    struct.pack("<4f", 1.5, 2.5, 3.5, 4.5))
        script = textwrap.dedent("""
            import ctypes, gc, struct, sys
            sys.path.insert(0, %r)
            import ttsm, torch
            from ttsm import _dlpack
            mgr = ttsm.Manager(budgets={"cuda:1": "1MiB"})
            m = mgr.load("file", model_path=%r, device="cuda:1")
            assert m.device == "cuda:1", m.device
            t = m.tensors()["w"]
            assert t.__dlpack_device__() == (2, 1)
            dl = _dlpack.tensor_of(t.__dlpack__(max_version=(1, 0)))
            assert (dl.device.device_type, dl.device.device_id) == (2, 1)
            assert dl.data == t.data_ptr and t.data_ptr
            # the stand-in's device memory is host memory: the uploaded values
            assert struct.unpack("<4f", ctypes.string_at(t.data_ptr, 16)) == (1.5, 2.5, 3.5, 4.5)
            del dl
            t._capsules = []
            gc.collect()
            base = mgr.loaded()[0].refs
            try:
                torch.from_dlpack(t)
                print("torch took a cuda tensor without CUDA?")
                sys.exit(1)
            except (RuntimeError, AssertionError, AttributeError) as e:
                print("torch refused:", str(e).splitlines()[0])
            t._capsules = []
            gc.collect()
            assert mgr.loaded()[0].refs == base, (mgr.loaded(), base)
            t.close()
            m.close()
            assert mgr.loaded()[0].refs == 0
            print("OK")
        """) % (os.path.join(SRC, "python"), path)
        env = dict(os.environ, TTSM_CUDA_DRIVER=drv, FAKE_CUDA_MODE="two")
        r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("OK", r.stdout)
        self.assertIn("torch refused", r.stdout)


if __name__ == "__main__":
    unittest.main()
