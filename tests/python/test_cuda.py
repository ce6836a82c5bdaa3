"""test_cuda.py - the binding on a real GPU: models loaded to cuda:0 come out of
state_dict() as CUDA tensors (torch.from_dlpack, no copy) whose values equal the
independent CPU readings, for every safetensors and PyTorch fixture; the
protocol's stream argument; budgets; lifetimes; a CUDA nn.Module loaded with
load_state_dict(strict=True); a Python engine on cuda:0 (bound, charged torch's own
allocations, dropped, dtype converted on the way).

Without a CUDA driver, a CUDA device or a CUDA build of torch every test is
skipped, and the skip says which of them is missing. tests/gpu/run_python.sh
runs this file where a GPU exists, with TTSM_REQUIRE_CUDA=1: a skip is then a
failure."""
import gc
import os
import unittest

from ttsm_testutil import (THIRD_PARTY, gen, read_safetensors, read_sharded,
                           safetensors_files, tensor_bytes, torch, torch_dtype, torch_files,
                           torch_load, ttsm)


def why_no_cuda():
    if torch is None:
        return "python3-torch is not installed"
    if not torch.cuda.is_available():
        return "torch %s has no usable CUDA (torch.cuda.is_available() is False)" % (
            torch.__version__)
    names = [d.name for d in ttsm.devices()]
    if "cuda:0" not in names:
        return "libttsm finds no CUDA device: %s" % (ttsm.cuda_status() or "no reason given")
    return None


REASON = why_no_cuda()
if REASON and os.environ.get("TTSM_REQUIRE_CUDA") == "1":
    raise RuntimeError("TTSM_REQUIRE_CUDA=1 but: " + REASON)


def refs(mgr):
    return sum(e.refs for e in mgr.loaded())


@unittest.skipIf(REASON is not None, "no CUDA here: %s" % REASON)
class Cuda(unittest.TestCase):
    def test_safetensors_fixtures_on_cuda(self):
        checked = 0
        with ttsm.Manager() as mgr:
            for path in safetensors_files():
                want = read_sharded(path) if path.endswith(".json") else read_safetensors(path)[0]
                with self.subTest(path=path), mgr.load("file", model_path=path,
                                                       device="cuda") as m:
                    self.assertEqual(m.device, "cuda:0")
                    tensors = m.tensors()
                    self.assertEqual(sorted(tensors), sorted(want))
                    for name, t in tensors.items():
                        dt, shape, data = want[name]
                        self.assertEqual(t.__dlpack_device__(), (2, 0))
                        raw = torch.from_dlpack(t.raw())
                        self.assertEqual(raw.device, torch.device("cuda", 0))
                        self.assertEqual(raw.cpu().numpy().tobytes(), data, name)
                        if torch_dtype(dt) is None:
                            continue
                        x = t.to_torch()
                        self.assertEqual((x.device.type, x.device.index), ("cuda", 0))
                        self.assertEqual((x.dtype, list(x.shape)), (torch_dtype(dt), shape))
                        self.assertEqual(tensor_bytes(x.cpu()), data, name)
                        if x.numel():
                            self.assertEqual(x.data_ptr(), t.data_ptr)
                        checked += 1
                    del tensors
                    gc.collect()
                    self.assertEqual(refs(mgr), 1)
        self.assertGreater(checked, 30)

    def test_pytorch_fixtures_on_cuda(self):
        with ttsm.Manager() as mgr:
            for path, ours in torch_files():
                want_t, _ = gen.flatten(torch_load(path, ours))
                with self.subTest(path=path), mgr.load("file", model_path=path,
                                                       device="cuda:0") as m:
                    sd = m.state_dict()
                    self.assertEqual(sorted(sd), sorted(want_t))
                    for name, want in want_t.items():
                        got = sd[name]
                        self.assertEqual(got.device, torch.device("cuda", 0), name)
                        self.assertEqual((got.dtype, got.shape), (want.dtype, want.shape), name)
                        if want.numel() > 1:
                            self.assertEqual(got.stride(), want.stride(), name)
                        self.assertEqual(tensor_bytes(got.cpu()), tensor_bytes(want), name)
                    del sd
                    gc.collect()
                    self.assertEqual(refs(mgr), 1)

    def test_protocol_streams_and_sharing(self):
        path = os.path.join(THIRD_PARTY, "safetensors", "burn_mnist.safetensors")
        want, _ = read_safetensors(path)
        with ttsm.Manager() as mgr:
            gpu = mgr.load("file", model_path=path, device="cuda")
            cpu = mgr.load("file", model_path=path, device="cpu")
            self.assertNotEqual(gpu.key, cpu.key)
            self.assertEqual(mgr.stats().checkpoint_opens, 1)  # one host table entry
            t = gpu.tensors()["fc1.weight"]
            x = torch.from_dlpack(t)  # __dlpack__(stream=<current stream>)
            self.assertEqual(x.data_ptr(), t.data_ptr)
            s = torch.cuda.Stream()
            with torch.cuda.stream(s):
                y = torch.from_dlpack(t)
                z = (y * 2).sum()
            s.synchronize()
            ref = torch.frombuffer(bytearray(want["fc1.weight"][2]), dtype=torch.float32)
            self.assertTrue(torch.allclose(z.cpu(), (ref * 2).sum(), rtol=1e-4))
            cap = t.__dlpack__(stream=1, max_version=(1, 0))
            del cap
            before = mgr.stats().devices["cuda:0"].in_use
            self.assertEqual(before, gpu.bytes)
            gpu.close()
            cpu.close()
            del t
            gc.collect()
            self.assertEqual(refs(mgr), 2)  # x and y
            del x, y
            gc.collect()
            self.assertEqual(refs(mgr), 0)
            mgr.unload(ttsm.cache_key("file", model_path=path, device="cuda:0"))
            self.assertEqual(mgr.stats().devices["cuda:0"].in_use, 0)

    def test_budget_and_outliving_the_manager(self):
        path = os.path.join(THIRD_PARTY, "safetensors", "burn_mnist.safetensors")
        with ttsm.Manager(budgets={"cuda:0": "64KiB"}) as mgr:
            with self.assertRaises(ttsm.TTSOutOfMemoryError) as cm:
                mgr.load("file", model_path=path, device="cuda:0")
            self.assertIn("cuda:0: over budget", str(cm.exception))
        mgr = ttsm.Manager(budgets={"cuda:0": "1GiB"})
        m = mgr.load("file", model_path=path, device="cuda:0")
        sd = m.state_dict()
        m.close()
        mgr.close()
        del m, mgr
        gc.collect()
        want, _ = read_safetensors(path)
        for name, (_, _, data) in want.items():
            self.assertEqual(tensor_bytes(sd[name].cpu()), data, name)
        del sd
        gc.collect()

    def test_cuda_module_load_state_dict(self):
        torch.manual_seed(5)
        src = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(),
                                  torch.nn.Linear(16, 4))
        import tempfile
        import shutil
        tmp = tempfile.mkdtemp(prefix="ttsm-cuda-")
        self.addCleanup(shutil.rmtree, tmp, True)
        pt = os.path.join(tmp, "seq.pt")
        torch.save(src.state_dict(), pt)
        x = torch.randn(3, 8)
        with ttsm.Manager() as mgr, mgr.load("file", model_path=pt, device="cuda") as m:
            dst = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(),
                                      torch.nn.Linear(16, 4)).cuda()
            dst.load_state_dict(m.state_dict(), strict=True)
            self.assertTrue(torch.allclose(dst(x.cuda()).cpu(), src(x), atol=1e-5))


@unittest.skipIf(REASON is not None, "no CUDA here: %s" % REASON)
class CudaEngines(unittest.TestCase):
    """A Python engine on cuda:0: bound to ttsm's device memory, charged what
    its factory allocated through torch (torch.cuda.memory_allocated across
    the call) on top of the weights, dropped with them; the dtype param
    converting on the way to the device, bit for bit torch's .to()."""

    def test_engine_on_cuda_charged_and_dropped(self):
        import shutil
        import tempfile
        import weakref
        from ttsm_testutil import manifest, write_models
        root = tempfile.mkdtemp(prefix="ttsm-cuda-engine-")
        self.addCleanup(shutil.rmtree, root, True)
        write_models(root, "cuda_engine")
        extra = 1 << 20

        def build(config, weights, ctx):
            lin = torch.nn.Linear(16, 16, device="meta")
            weights.bind(lin)
            lin.scratch = torch.zeros(extra // 4, device=config.device)  # torch's own memory
            return lin

        ttsm.register_engine("cuda_engine", build, manifest=manifest("cuda_engine"),
                             extra_bytes=2 * extra)
        with ttsm.Manager(models_dir=root, budgets={"cuda:0": "64MiB"}) as mgr:
            with mgr.load("cuda_engine", device="cuda") as m:
                weights = 1024 + 256  # weight and bias, each 256-byte aligned on the device
                self.assertEqual(m.bytes, weights + extra)
                self.assertEqual(m.engine.weight.device, torch.device("cuda", 0))
                self.assertEqual(m.engine.weight.data_ptr(), m.tensors()["weight"].data_ptr)
                obj = weakref.ref(m.engine)
                key = m.key
            mgr.unload(key)
            gc.collect()
            self.assertIsNone(obj())
            self.assertEqual(mgr.stats().devices["cuda:0"].in_use, 0)
            with mgr.load("cuda_engine", device="cuda", dtype="bfloat16") as h, \
                 mgr.load("cuda_engine", device="cpu") as c:
                w = h.state_dict()["weight"]
                self.assertEqual((w.device.type, w.dtype), ("cuda", torch.bfloat16))
                want = c.state_dict()["weight"].to(torch.bfloat16)
                self.assertTrue(torch.equal(w.cpu().view(torch.int16), want.view(torch.int16)))


if __name__ == "__main__":
    unittest.main()
