"""test_engines.py - Python engines in the one cache: register_engine() on a
manifest engine (built in, a dict, a file), the object a factory returns as
Model.engine shared by every holder, dropped (with its weights) on evict,
unload and invalidate (weakrefs); an object bound to its own weights never
pins its entry, a caller's handle or tensor does; recover() on rebuild;
eight threads making one factory call; a raising factory reaching every
waiter as TTSEngineError chained from its exception, nothing cached; the
lock order against the GIL and torch deleters under load; admission on the
manifest's estimate before the factory, the charge after it; free(),
on_evict, the keep-alive timer; FallbackChain; engine_info, ls and resolve
against the CLI."""
import faulthandler
import gc
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import warnings
import weakref

from ttsm_testutil import CLI, SRC, manifest, torch, ttsm, write_models

EXAMPLES = os.path.join(SRC, "examples", "models")
NET_BYTES = 16 * 16 * 4 + 16 * 4  # one model of write_models()


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 16, device="meta")

    def forward(self, x):
        return self.lin(x)


class Engine:
    """A factory that records its calls and what it built."""

    def __init__(self, sleep=0.0, keep_weights=False, fail=None, charge=0, probe=None):
        self.calls, self.built = [], []
        self.sleep, self.keep_weights, self.fail, self.charge = sleep, keep_weights, fail, charge
        self.probe = probe
        self.lock = threading.Lock()

    def __call__(self, config, weights, ctx):
        with self.lock:
            self.calls.append((config, ctx.recovering, ctx.estimate))
        if self.probe:
            self.probe(config, weights, ctx)
        time.sleep(self.sleep)
        net = Net()
        res = weights.bind(net.lin)  # the checkpoint's names are the Linear's
        assert res.missing_keys == [] and res.unexpected_keys == []
        if self.keep_weights:
            net.weights = weights  # the handle itself: it must not pin either
        if self.charge:
            ctx.charge(self.charge)
        with self.lock:
            self.built.append(weakref.ref(net))
        if self.fail:
            raise self.fail
        return net


_names = iter(range(1000))


def new_engine(root, factory, models=("a", "b", "c"), **kw):
    """A fresh engine (its own name) over files written under root."""
    name = "t%d" % next(_names)
    write_models(root, name, models)
    ttsm.register_engine(name, factory, manifest=manifest(name, models, **kw))
    return name


class Base(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="ttsm-engines-")
        self.addCleanup(shutil.rmtree, self.root, True)
        # A deadlock fails the test (with every thread's stack) instead of hanging ctest.
        faulthandler.dump_traceback_later(120, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)

    def mgr(self, **kw):
        m = ttsm.Manager(models_dir=self.root, **kw)
        self.addCleanup(m.close)
        return m


class Objects(Base):
    def test_builtin_manifest_engine_and_shared_object(self):
        """A factory on a built-in manifest engine (chatterbox, files from
        examples/models): .engine is its object, one for every holder."""
        seen = []

        def build(config, weights, ctx):
            seen.append(config)
            lstm = torch.nn.LSTM(4, 4, device="meta")
            weights.bind(lstm, component="ve", prefix="lstm.", strict=False)
            return {"lstm": lstm, "weights": weights}

        ttsm.register_engine("ChatterBox", build)  # an alias names it too
        with ttsm.Manager(models_dir=EXAMPLES) as mgr:
            a = mgr.load("chatterbox", language="English", device="cpu")
            b = mgr.load("chatterbox", device="cpu")
            self.assertIs(a.engine, b.engine)
            self.assertEqual(len(seen), 1)
            c = seen[0]
            self.assertIsInstance(c, ttsm.LoadConfig)
            self.assertEqual((c.engine, c.model_name, c.device, c.language, c.key),
                             ("chatterbox", "English", "cpu", "en", a.key))
            w = a.tensors("ve")["lstm.weight_ih_l0"]
            self.assertEqual(a.engine["lstm"].weight_ih_l0.data_ptr(), w.data_ptr)
            self.assertTrue(ttsm.engine_info("chatterbox").python)
            a.close()
            b.close()
            del w
            gc.collect()
            self.assertEqual(mgr.loaded()[0].refs, 0)  # its own object holds it not

    def test_evict_unload_invalidate_drop_object_and_weights(self):
        eng = Engine(keep_weights=True)
        name = new_engine(self.root, eng)
        mgr = self.mgr(budgets={"cpu": NET_BYTES + 100})
        for how in ("unload", "evict", "invalidate"):
            with mgr.load(name, "a", device="cpu") as m:
                obj = weakref.ref(m.engine)
                wts = weakref.ref(m.engine.weights)
                key = m.key
            self.assertIsNotNone(obj())
            if how == "unload":
                mgr.unload(key)
            elif how == "evict":
                mgr.load(name, "b", device="cpu").close()  # the budget holds one
            else:
                mgr.invalidate(key)
            gc.collect()
            self.assertIsNone(obj(), how)
            self.assertIsNone(wts(), how)
            s = mgr.stats()
            self.assertEqual(s.orphans, 0, how)
            self.assertNotIn(key, [e.key for e in mgr.loaded()], how)
            for e in mgr.loaded():
                mgr.unload(e.key)
            self.assertEqual(mgr.stats().devices["cpu"].in_use, 0, how)
        s = mgr.stats()
        self.assertEqual((s.unloads >= 1, s.evictions, s.invalidations), (True, 1, 1))

    def test_own_object_does_not_pin_callers_do(self):
        eng = Engine(keep_weights=True)
        name = new_engine(self.root, eng)
        mgr = self.mgr(budgets={"cpu": NET_BYTES + 100})
        a = mgr.load(name, "a", device="cpu")
        # A caller's handle holds it.
        with self.assertRaises(ttsm.TTSOutOfMemoryError) as cm:
            mgr.load(name, "b", device="cpu")
        self.assertIn("referenced", cm.exception.message)
        # So does a tensor taken outside the factory.
        sd = a.state_dict()
        a.close()
        with self.assertRaises(ttsm.TTSOutOfMemoryError):
            mgr.load(name, "b", device="cpu")
        del sd
        gc.collect()
        # Only its own object (bound module, the weights handle) is left.
        self.assertEqual(mgr.loaded()[0].refs, 0)
        with mgr.load(name, "b", device="cpu") as b:
            self.assertEqual(b.engine.lin.bias.shape, (16,))
        self.assertEqual(mgr.stats().evictions, 1)
        self.assertTrue(mgr.stats().devices["cpu"].peak <= NET_BYTES + 100)

    def test_manifest_from_a_file_and_errors(self):
        path = os.path.join(self.root, "m.json")
        with open(path, "w") as f:
            json.dump(manifest("from_file"), f)
        write_models(self.root, "from_file")
        ttsm.register_engine("from_file", Engine(), manifest=path)
        with self.mgr().load("from_file", device="cpu") as m:
            self.assertIsInstance(m.engine, Net)
        with self.assertRaises(ttsm.TTSModelNotFoundError):
            ttsm.register_engine("no_such_engine", Engine())
        with self.assertRaises(ttsm.TTSModelNotFoundError):
            ttsm.register_engine("file", Engine())  # not a manifest engine
        bad = manifest("bad_one")
        bad["engine_memory"] = {"extra_bytes": -5}
        with self.assertRaises(ttsm.TTSModelFormatError) as cm:
            ttsm.register_engine("bad_one", Engine(), manifest=bad)
        self.assertIn("engine_memory: extra_bytes must be an integer >= 0", cm.exception.message)
        with self.assertRaises(ttsm.TTSInvalidArgumentError):
            ttsm.register_engine("from_file", "not callable")

    def test_replace_factory(self):
        first, second = Engine(), Engine()
        name = new_engine(self.root, first)
        ttsm.register_engine(name, second)
        with self.mgr().load(name, device="cpu"):
            pass
        self.assertEqual((len(first.calls), len(second.calls)), (0, 1))

    def test_recover_on_rebuild(self):
        got = []

        def recover(old, config):
            got.append((old, config))

        eng = Engine()
        name = new_engine(self.root, eng, can_corrupt=True)
        ttsm.register_engine(name, eng, recover=recover)
        mgr = self.mgr()
        held = mgr.load(name, device="cpu")
        old = held.engine
        mgr.invalidate(held)
        self.assertIs(held.engine, old)  # a holder keeps its object
        with mgr.load(name, device="cpu") as fresh:
            self.assertIsNot(fresh.engine, old)
        self.assertEqual(len(got), 1)
        self.assertIs(got[0][0], old)
        self.assertEqual(got[0][1].key, held.key)
        self.assertEqual([r for _, r, _ in eng.calls], [False, True])
        ref = weakref.ref(old)
        del old, got
        held.close()
        gc.collect()
        self.assertIsNone(ref())
        self.assertEqual(mgr.stats().orphans, 0)

    def test_load_of_itself_in_a_factory_is_an_error(self):
        box = {}

        def build(config, weights, ctx):
            return box["mgr"].load(config.engine, config.model_name, device="cpu")

        name = new_engine(self.root, build)
        box["mgr"] = mgr = self.mgr()
        with self.assertRaises(ttsm.TTSEngineError) as cm:
            mgr.load(name, device="cpu")
        self.assertIsInstance(cm.exception.__cause__, ttsm.TTSEngineError)
        self.assertIn("load of itself", str(cm.exception.__cause__))


class Concurrency(Base):
    def run_threads(self, n, fn):
        barrier = threading.Barrier(n)
        out = [None] * n

        def work(i):
            barrier.wait()
            try:
                out[i] = fn()
            except BaseException as e:  # collected for the assertions
                out[i] = e
        th = [threading.Thread(target=work, args=(i,)) for i in range(n)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        return out

    def test_eight_threads_one_factory_call(self):
        eng = Engine(sleep=0.2)
        name = new_engine(self.root, eng)
        mgr = self.mgr()
        models = self.run_threads(8, lambda: mgr.load(name, device="cpu"))
        for m in models:
            self.assertIsInstance(m, ttsm.Model)
        self.assertEqual(len(eng.calls), 1)
        s = mgr.stats()
        self.assertEqual((s.misses, s.loads, s.hits), (1, 1, 7))
        self.assertEqual(len({id(m.engine) for m in models}), 1)
        for m in models:
            m.close()

    def test_raising_factory_reaches_every_waiter(self):
        boom = ValueError("the network does not fit these weights")
        eng = Engine(sleep=0.2, fail=boom)
        name = new_engine(self.root, eng)
        mgr = self.mgr()
        errs = self.run_threads(8, lambda: mgr.load(name, device="cpu"))
        self.assertEqual(len(eng.calls), 1)
        for e in errs:
            self.assertIsInstance(e, ttsm.TTSEngineError)
            self.assertIs(e.__cause__, boom)
            self.assertEqual(e.message, errs[0].message)
        self.assertIn("engine factory raised ValueError: the network does not fit",
                      errs[0].message)
        self.assertIn("__cause__", errs[0].hint)
        s = mgr.stats()
        self.assertEqual((s.entries, s.failures, s.orphans), (0, 1, 0))
        self.assertEqual(s.devices["cpu"].in_use, 0)
        del errs, e
        gc.collect()
        self.assertIsNone(eng.built[0]())  # the half-built module went with the failure
        # Nothing was cached: the next load calls the factory again.
        eng.fail = None
        with mgr.load(name, device="cpu"):
            pass
        self.assertEqual(len(eng.calls), 2)

    def test_lock_order_under_load(self):
        """Factories binding modules, torch tensors dying in other threads
        (their deleters take the manager lock with the GIL held), engine
        objects dropped by evictions, on_evict and __del__ calling back into
        the manager, stats from a reader: for a few seconds, on a budget that
        keeps evicting. A lock taken in the wrong order hangs (and the
        watchdog fails the test)."""
        box = {}
        evicted = []

        class Noisy(Net):
            def __del__(self):
                box["mgr"].stats()  # the manager lock is free when objects die

        def build(config, weights, ctx):
            net = Noisy()
            weights.bind(net.lin)
            return net

        name = new_engine(self.root, build, models=tuple("abcdef"))
        mgr = self.mgr(budgets={"cpu": 3 * NET_BYTES},
                       on_evict=lambda e, why: (evicted.append(why), mgr.stats()))
        box["mgr"] = mgr
        stop = time.monotonic() + 4
        errors = []

        def worker(seed):
            rng = random.Random(seed)
            held = []
            try:
                while time.monotonic() < stop:
                    try:
                        m = mgr.load(name, rng.choice("abcdef"), device="cpu")
                    except ttsm.TTSOutOfMemoryError:
                        held.clear()
                        continue
                    with torch.no_grad():
                        m.engine(torch.ones(1, 16))
                    if rng.random() < 0.3:
                        held.append(m.state_dict()["weight"])  # dies later, elsewhere
                    m.close()
                    if len(held) > 2:
                        held.pop(0)
            except BaseException as e:  # reported below
                errors.append(e)

        def reader():
            while time.monotonic() < stop:
                s = mgr.stats()
                if s.devices.get("cpu") and s.devices["cpu"].peak > 3 * NET_BYTES:
                    errors.append(AssertionError("peak over budget: %r" % (s,)))
                mgr.loaded()
                gc.collect()

        th = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        th.append(threading.Thread(target=reader))
        for t in th:
            t.start()
        for t in th:
            t.join()
        self.assertEqual(errors, [])
        self.assertGreater(len(evicted), 10)
        gc.collect()
        for e in mgr.loaded():
            mgr.unload(e.key)
        s = mgr.stats()
        self.assertEqual((s.entries, s.orphans, s.devices["cpu"].in_use), (0, 0, 0))


class Budgets(Base):
    def test_estimate_admitted_before_the_factory(self):
        during = []
        eng = Engine(probe=lambda c, w, ctx: during.append(mgr.stats()))
        name = new_engine(self.root, eng, engine_memory={"extra_bytes": 4096})
        budget = 2 * NET_BYTES + 4096 - 1  # room for one model, its estimate and another's weights
        mgr = self.mgr(budgets={"cpu": budget})
        mgr.load(name, "a", device="cpu").close()
        self.assertEqual(eng.calls[0][2], 4096)
        with mgr.load(name, "b", device="cpu") as b:
            # b's factory ran after a was evicted: the estimate was reserved first.
            s = during[1]
            self.assertEqual(s.evictions, 1)
            self.assertEqual(s.devices["cpu"].reserved, NET_BYTES + 4096)
            self.assertEqual(s.devices["cpu"].in_use, 0)
            self.assertEqual(b.bytes, NET_BYTES)  # charged what it holds: nothing beyond
        self.assertLessEqual(mgr.stats().devices["cpu"].peak, budget)

    def test_charge(self):
        eng = Engine(charge=2000)
        name = new_engine(self.root, eng, engine_memory={"ratio": 2.0})
        mgr = self.mgr(budgets={"cpu": 8000})
        with mgr.load(name, "a", device="cpu") as m:
            self.assertEqual(eng.calls[0][2], 2 * NET_BYTES)  # ratio x the weights
            self.assertEqual(m.bytes, NET_BYTES + 2000)
            self.assertEqual(mgr.stats().devices["cpu"].in_use, NET_BYTES + 2000)
        # More than fits: the load fails, its object goes, nothing is cached.
        eng.charge = 9000
        with self.assertRaises(ttsm.TTSOutOfMemoryError) as cm:
            mgr.load(name, "b", device="cpu")
        self.assertIn("holds 9000 bytes beyond its weights", cm.exception.message)
        gc.collect()
        self.assertIsNone(eng.built[-1]())
        s = mgr.stats()
        self.assertEqual((s.entries, s.devices["cpu"].in_use), (1, NET_BYTES + 2000))
        # The kwarg overrides the manifest's estimate.
        other = Engine()
        oname = new_engine(self.root, other)
        ttsm.register_engine(oname + "_x", other, manifest=manifest(oname + "_x"),
                             extra_bytes=777)
        write_models(self.root, oname + "_x")
        with mgr.load(oname + "_x", device="cpu"):
            self.assertEqual(other.calls[-1][2], 777)

    def test_free_and_on_evict(self):
        got = []
        eng = Engine()
        name = new_engine(self.root, eng)
        mgr = self.mgr(budgets={"cpu": 10000}, on_evict=lambda e, why: got.append((e, why)))
        held = mgr.load(name, "a", device="cpu")
        mgr.load(name, "b", device="cpu").close()
        mgr.load(name, "c", device="cpu").close()
        avail = mgr.free("cpu", 9000)
        self.assertEqual(avail, 10000 - NET_BYTES)  # both idle ones went; a is held
        self.assertEqual([why for _, why in got], ["free", "free"])
        self.assertEqual([e.model for e, _ in got], ["b", "c"])  # least recently used first
        gc.collect()
        self.assertEqual([r() is None for r in eng.built], [False, True, True])
        self.assertEqual(mgr.free("cpu", 100), 10000 - NET_BYTES)
        self.assertIsNone(self.mgr().free("cpu", 1))  # no budget: no limit
        with self.assertRaises(ttsm.TTSDeviceError):
            mgr.free("tpu", 1)
        held.close()
        mgr.unload(mgr.loaded()[0].key)
        self.assertEqual(got[-1][1], "unload")

    def test_keep_alive_timer(self):
        went = threading.Event()
        eng = Engine()
        name = new_engine(self.root, eng)

        def tasks():
            return set(os.listdir("/proc/self/task"))

        before = tasks()
        mgr = ttsm.Manager(models_dir=self.root, keep_alive="100ms", keep_alive_timer=True,
                           on_evict=lambda e, why: went.set() if why == "keep-alive" else None)
        timer = tasks() - before
        self.assertEqual(len(timer), 1)  # the timer's thread
        mgr.load(name, device="cpu").close()
        # No call to the manager from here: the timer alone evicts it.
        self.assertTrue(went.wait(10))
        gc.collect()
        self.assertIsNone(eng.built[0]())
        self.assertEqual(mgr.stats().entries, 0)
        mgr.close()
        self.assertFalse(timer & tasks())  # stopped and joined
        # Without the timer, an idle entry waits for the next call.
        with ttsm.Manager(models_dir=self.root, keep_alive="50ms") as lazy:
            lazy.load(name, device="cpu").close()
            time.sleep(0.2)
            self.assertEqual(lazy.stats().entries, 1)  # stats() does not sweep
            self.assertEqual(lazy.sweep(), 1)


class Fallback(Base):
    def test_chain(self):
        mgr = self.mgr()
        seen = []

        def missing():
            return mgr.load("chatterbox", "English", device="cpu")  # no files in self.root

        def spare():
            return "spare"

        chain = ttsm.FallbackChain(missing).add(
            spare, lambda e: seen.append(e) or isinstance(e, ttsm.TTSModelNotFoundError))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            self.assertEqual(chain.load(), "spare")
        self.assertIsInstance(seen[0], ttsm.TTSModelNotFoundError)  # the error, not its text
        self.assertEqual(len(chain.attempts), 1)
        self.assertEqual(chain.attempts[0].code, ttsm.Status.ERR_NOT_FOUND)
        self.assertTrue(chain.attempts[0].message.startswith("missing: chatterbox/English"))
        self.assertTrue(any(issubclass(x.category, ttsm.FallbackWarning) for x in w))

        # Every step fails: the primary's class, every attempt, chained.
        def broken():
            raise RuntimeError("CUDA error: out of memory")

        chain = (ttsm.FallbackChain(missing)
                 .add(broken, ttsm.if_missing_or_bad)
                 .add(spare, ttsm.TTSModelFormatError))  # not met by a RuntimeError
        with self.assertRaises(ttsm.TTSModelNotFoundError) as cm:
            chain.load()
        e = cm.exception
        self.assertIsInstance(e.__cause__, ttsm.TTSModelNotFoundError)
        self.assertEqual([a.code for a in e.attempts],
                         [ttsm.Status.ERR_NOT_FOUND, ttsm.Status.ERR_LOAD])
        self.assertIn("broken: RuntimeError: CUDA error: out of memory", e.attempts[1].message)
        # KeyboardInterrupt is not a failure to fall back from.
        def interrupted():
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            ttsm.FallbackChain(interrupted).add(spare).load()

    def test_chain_inside_a_factory(self):
        """cuda, then cpu with a warning: a factory's own chain."""
        def build(config, weights, ctx):
            def on(device):
                def make():
                    net = torch.nn.Linear(16, 16, device=device)
                    return net
                make.__name__ = device
                return make
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                net = ttsm.FallbackChain(on("cuda")).add(
                    on("cpu"), lambda e: isinstance(e, (AssertionError, RuntimeError))).load()
            return {"net": net, "warned": [str(x.message) for x in w]}

        name = new_engine(self.root, build)
        with self.mgr().load(name, device="cpu") as m:
            if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
                self.assertEqual(m.engine["warned"], [])
            else:
                self.assertEqual(str(m.engine["net"].weight.device), "cpu")
                self.assertIn("cpu loaded instead: cuda:", m.engine["warned"][0])


class Introspection(unittest.TestCase):
    def test_engine_info_is_the_manifest(self):
        for name in ("chatterbox", "chatterbox_official_23lang", "index_tts", "rvc"):
            with open(os.path.join(SRC, "engines", name + ".json")) as f:
                m = json.load(f)
            info = ttsm.engine_info(m["aliases"][0] if m.get("aliases") else name)
            self.assertEqual(info.name, name)
            self.assertEqual([x.name for x in info.models], [x["name"] for x in m["models"]])
            self.assertEqual(info.model_types, m["model_types"])
            self.assertEqual(info.default_model, m["default_model"])
            self.assertEqual(info.devices, m["devices"])
            for k, v in m["capabilities"].items():
                self.assertEqual(info.capabilities[k], v, (name, k))
            for k, v in m.get("params", {}).items():
                self.assertEqual(info.params[k].values, v.get("values"))
                self.assertEqual(info.params[k].default, v["default"])
            self.assertEqual(info.params["dtype"].values, ["float16", "bfloat16", "float32"])
            self.assertEqual(len(info.languages), len(m.get("languages", [])))
        cb = ttsm.engine_info("chatterbox")
        self.assertIn("en", cb.languages)
        self.assertEqual((cb.models[0].name, cb.models[0].language), ("English", "en"))
        self.assertEqual(ttsm.engine_info("index_tts").params["use_fp16"].dtype,
                         {"true": "float16"})
        rvc = ttsm.engine_info("rvc")
        self.assertEqual({t for x in rvc.models for t in x.types}, set(rvc.model_types))
        with self.assertRaises(ttsm.TTSModelNotFoundError):
            ttsm.engine_info("nope")

    @unittest.skipUnless(CLI, "needs the ttsm CLI (TTSM is set by ctest)")
    def test_ls_and_resolve_match_the_cli(self):
        env = dict(os.environ, HF_HUB_CACHE=tempfile.gettempdir() + "/ttsm-no-hub")
        cli = json.loads(subprocess.run([CLI, "ls", "--json", "--models-dir", EXAMPLES],
                                        capture_output=True, text=True, env=env,
                                        check=True).stdout)["models"]
        with ttsm.Manager(models_dir=EXAMPLES, hf_cache=env["HF_HUB_CACHE"]) as mgr:
            ours = [dict(x._asdict()) for x in mgr.ls()]
            self.assertEqual(ours, cli)
            self.assertGreater(len(ours), 10)
            r = mgr.resolve("f5tts", language="de")
            cli_r = json.loads(subprocess.run(
                [CLI, "resolve", "f5tts", "--language", "de", "--models-dir", EXAMPLES,
                 "--json"], capture_output=True, text=True, env=env, check=True).stdout)
            self.assertEqual((r.engine, r.model, r.complete), (cli_r["engine"], cli_r["model"],
                                                               cli_r["complete"]))
            self.assertEqual([c._asdict() for c in r.components], cli_r["components"])
            with self.assertRaises(ttsm.TTSModelNotFoundError):
                mgr.resolve("chatterbox", language="tlh")
            self.assertEqual({x.engine for x in mgr.ls("f5tts")}, {"f5tts"})


if __name__ == "__main__":
    unittest.main()
