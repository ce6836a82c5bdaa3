"""manager.py - Manager (one libttsm cache: budgets, keep-alive,
single-flight loads), Model (one reference to a cache entry: components,
tensors, state_dict, metadata, synthesis) and the module-level helpers
(cache_key, devices, engines). Every call goes through ctypes, which
releases the GIL, so loads in several threads run in parallel."""
import collections
import ctypes
import json
import os
import re
import threading

from . import _lib
from ._lib import Error, LoadConfig, Param, cstr, lib
from ._lib import text as _text
from .errors import Status, TTSCancelledError, TTSInvalidArgumentError, from_c
from .errors import _status
from .tensor import Tensor, to_torch

Entry = collections.namedtuple(
    "Entry", "key engine model device bytes refs pinned loading idle_seconds")
Entry.__doc__ = "One cache entry, as ttsm_manager_list() reports it."
DeviceStats = collections.namedtuple("DeviceStats", "budget in_use reserved peak entries")
DeviceStats.__doc__ = "Bytes on one device; budget None: none configured."
Stats = collections.namedtuple(
    "Stats", "hits misses loads evictions failures unloads invalidations checkpoint_opens "
             "entries orphans devices")
Stats.__doc__ = "Counters of a manager; devices maps a device name to DeviceStats."
Component = collections.namedtuple("Component", "name kind path format tensors")
Component.__doc__ = ("One component of a model: kind 'tensors', 'json' or 'blob'; format the "
                     "checkpoint format (tensors only); tensors their count.")
Device = collections.namedtuple("Device", "name description total_bytes free_bytes")
LoadAttempt = collections.namedtuple("LoadAttempt", "model device code message")
LoadAttempt.__doc__ = ("One step a load tried: the model and device asked for, its status "
                       "(a Status) and its error message ('' for the step that loaded).")
Fallback = collections.namedtuple("Fallback", "asked asked_device loaded loaded_device why")
Fallback.__doc__ = ("A load that returned another model than the one asked for: what was "
                    "asked, what was loaded (Model.name), and why (the asked model's error).")

_UNITS = "BKMGT"


def parse_size(value, what="size"):
    """Bytes from an int or a string like "8GiB", "512M", "1.5GB" (binary
    units, K = KiB = KB = 1024, as the ttsm CLI reads them)."""
    if isinstance(value, bool):
        raise TTSInvalidArgumentError.from_python("%s: %r is not a size" % (what, value))
    if isinstance(value, int):
        if value < 0 or value >= 1 << 64:
            raise TTSInvalidArgumentError.from_python("%s: %d is out of range" % (what, value))
        return value
    if not isinstance(value, str):
        raise TTSInvalidArgumentError.from_python(
            "%s must be an int or a string like '8GiB', not %s" % (what, type(value).__name__))
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([KMGTkmgt])(?:[iI])?)?([bB])?\s*", value)
    if not m or (m.group(3) is None and m.group(2) is None and "." in m.group(1)):
        raise TTSInvalidArgumentError.from_python(
            "%s: %r is not a size (write e.g. 8GiB, 512M, 1.5G or a number of bytes)" %
            (what, value))
    mul = 1024 ** _UNITS.index(m.group(2).upper()) if m.group(2) else 1
    n = float(m.group(1)) * mul if "." in m.group(1) else int(m.group(1)) * mul
    if n >= 1 << 64:
        raise TTSInvalidArgumentError.from_python("%s: %r is out of range" % (what, value))
    return int(n)


def parse_duration(value, what="keep_alive"):
    """Milliseconds from seconds (int/float) or a string like "5m", "30s",
    "1h", "250ms". None and 0 mean forever (0)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TTSInvalidArgumentError.from_python("%s: %r is not a duration" % (what, value))
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", value)
        if not m:
            raise TTSInvalidArgumentError.from_python(
                "%s: %r is not a duration (write e.g. 300, '5m', '30s', '1h')" % (what, value))
        seconds = float(m.group(1)) * {"ms": 1e-3, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
    else:
        raise TTSInvalidArgumentError.from_python(
            "%s must be seconds or a string like '5m', not %s" % (what, type(value).__name__))
    if seconds < 0 or seconds != seconds or seconds * 1000 >= 1 << 64:
        raise TTSInvalidArgumentError.from_python("%s: %r is out of range" % (what, value))
    ms = int(round(seconds * 1000))
    return ms if ms > 0 or seconds == 0 else 1


def _check(st, err):
    if st != Status.OK:
        raise from_c(st, err)


def _param_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class _Handle:
    """What Manager and Model share: a C handle that close() gives back
    (idempotently), as a context manager and when collected."""

    @property
    def closed(self):
        return self._handle is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Config:
    """A ttsm_load_config and the bytes it points into (kept alive with it)."""

    def __init__(self, engine, model=None, device="auto", language=None, model_path=None,
                 repo_id=None, model_type=None, params=None):
        if engine is None:
            raise TTSInvalidArgumentError.from_python("engine is required")
        keep = self._keep = []

        def c(v, what):
            b = cstr(v, what)
            keep.append(b)
            return b

        cfg = self.cfg = LoadConfig()
        cfg.struct_size = ctypes.sizeof(LoadConfig)
        cfg.engine = c(engine, "engine")
        cfg.model_type = c(model_type if model_type is not None else "tts", "model_type")
        cfg.model_name = c(model, "model")
        cfg.device = c(device if device is not None else "auto", "device")
        cfg.language = c(language, "language")
        cfg.model_path = c(model_path, "model_path")
        cfg.repo_id = c(repo_id, "repo_id")
        params = params or {}
        if params:
            arr = (Param * len(params))()
            for i, (k, v) in enumerate(sorted(params.items())):
                arr[i].key = c(k, "param name")
                arr[i].value = c(_param_text(v), "param %s" % k)
            keep.append(arr)
            cfg.params = arr
            cfg.n_params = len(params)


def cache_key(engine, model=None, device="auto", language=None, model_path=None, repo_id=None,
              model_type=None, **params):
    """The cache key of a load config (32 hex digits; docs/cache-key.md):
    the same config gives the same key in every process and on every machine."""
    c = _Config(engine, model, device, language, model_path, repo_id, model_type, params)
    out = (ctypes.c_char * _lib.KEY_HEX_SIZE)()
    err = Error()
    _check(lib.ttsm_cache_key(ctypes.byref(c.cfg), out, ctypes.byref(err)), err)
    return out.value.decode()


def cache_key_canonical(engine, model=None, device="auto", language=None, model_path=None,
                        repo_id=None, model_type=None, **params):
    """The canonical text the cache key hashes (for explanations)."""
    c = _Config(engine, model, device, language, model_path, repo_id, model_type, params)
    out = ctypes.c_void_p()
    n = ctypes.c_size_t()
    err = Error()
    _check(lib.ttsm_cache_key_canonical(ctypes.byref(c.cfg), ctypes.byref(out), ctypes.byref(n),
                                        ctypes.byref(err)), err)
    try:
        return ctypes.string_at(out.value, n.value).decode("utf-8")
    finally:
        lib.ttsm_free(out)


def devices():
    """The devices of this machine: cpu first, then each CUDA device."""
    res = []
    for i in range(lib.ttsm_device_count()):
        d = _lib.DeviceInfo()
        err = Error()
        _check(lib.ttsm_device_get(i, ctypes.byref(d), ctypes.byref(err)), err)
        res.append(Device(_text(d.name), _text(d.description), d.total_bytes, d.free_bytes))
    return res


def cuda_status():
    """Why CUDA has no devices here, or "" when it has some."""
    return _text(lib.ttsm_cuda_status())


def engines():
    """Names of the registered engines ('file' first)."""
    return [_text(lib.ttsm_engine_name(lib.ttsm_engine_get(i)))
            for i in range(lib.ttsm_engine_count())]


class Manager(_Handle):
    """One libttsm manager: the cache every load goes through.

    models_dir: a folder or a list of folders (models roots; default
    $TTSM_MODELS_PATH); hf_cache: the HuggingFace hub cache (default
    $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub); budgets:
    {"cpu": "8GiB", "cuda:0": "20GiB"} (ints are bytes); keep_alive: idle
    entries older than this are evicted (seconds or "5m"; None: never);
    io_mode: "mmap" (private copy-on-write mapping) or "read";
    allow_cpu_fallback: a load that does not fit its device loads on cpu;
    device_reserve: bytes kept free on CUDA devices (default 512 MiB);
    engines_dir: a folder of extra engine manifests; comfyui: a ComfyUI
    folder or a list of them (default $TTSM_COMFYUI_PATH): each one's
    models/ and the TTS folders its extra_model_paths.yaml names are searched
    after models_dir; progress: callable(key, done_bytes, total_bytes), a
    true result cancels the load; verify_on_load: also know files by a hash
    of their headers and their first and last 64 KiB, so a same-size rewrite
    with its modification time put back is noticed on the next miss (reads
    those bytes on every miss).

    Thread-safe. close() (or leaving a ``with`` block) destroys the cache:
    models and tensors still referenced stay valid, and their memory goes
    with the last of them."""

    def __init__(self, models_dir=None, hf_cache=None, budgets=None, keep_alive=None,
                 io_mode="mmap", allow_cpu_fallback=False, device_reserve=None,
                 engines_dir=None, progress=None, comfyui=None, verify_on_load=False):
        self._handle = None
        self._cond = threading.Condition()
        self._active = 0
        o = _lib.ManagerOptions()
        o.struct_size = ctypes.sizeof(_lib.ManagerOptions)
        o.device_reserve_bytes = (_lib.DEFAULT_DEVICE_RESERVE if device_reserve is None
                                  else parse_size(device_reserve, "device_reserve"))
        o.keep_alive_ms = parse_duration(keep_alive)
        if io_mode not in ("mmap", "read"):
            raise TTSInvalidArgumentError.from_python(
                "io_mode must be 'mmap' or 'read', not %r" % (io_mode,))
        o.io_mode = _lib.IO_MMAP if io_mode == "mmap" else _lib.IO_READ
        o.allow_cpu_fallback = 1 if allow_cpu_fallback else 0
        o.verify_on_load = 1 if verify_on_load else 0
        keep = []
        if budgets:
            if not isinstance(budgets, dict):
                raise TTSInvalidArgumentError.from_python(
                    "budgets must be a dict like {'cpu': '8GiB'}")
            arr = (_lib.DeviceBudget * len(budgets))()
            for i, (dev, size) in enumerate(budgets.items()):
                b = cstr(dev, "budget device")
                keep.append(b)
                arr[i].device = b
                arr[i].bytes = parse_size(size, "budget for %s" % dev)
            o.budgets = arr
            o.n_budgets = len(budgets)
            keep.append(arr)
        if models_dir is not None:
            if isinstance(models_dir, (list, tuple)):
                models_dir = ":".join(os.fspath(d) for d in models_dir)
            o.models_dirs = cstr(models_dir, "models_dir")
        if comfyui is not None:
            if isinstance(comfyui, (list, tuple)):
                comfyui = ":".join(os.fspath(d) for d in comfyui)
            o.comfyui_dirs = cstr(comfyui, "comfyui")
        o.hf_cache = cstr(hf_cache, "hf_cache")
        o.engines_dir = cstr(engines_dir, "engines_dir")
        self._progress_error = threading.local()
        if progress is not None:
            if not callable(progress):
                raise TTSInvalidArgumentError.from_python("progress must be callable")
            # Kept on the object: C calls it for as long as the manager lives.
            self._progress_cb = _lib.PROGRESS_FN(self._make_progress(progress))
            o.progress = self._progress_cb
        h = ctypes.c_void_p()
        err = Error()
        _check(lib.ttsm_manager_create(ctypes.byref(o), ctypes.byref(h), ctypes.byref(err)), err)
        self._handle = h.value

    def _make_progress(self, fn):
        local = self._progress_error

        def cb(user, key, done, total):
            try:
                return 1 if fn(_text(key), done, total) else 0
            except BaseException as e:  # an exception cancels, and is re-raised by load()
                local.error = e
                return 1
        return cb

    # Calls in flight keep close() waiting, so the C manager is never
    # destroyed under a call (its contract: calls must not race destroy).
    def _enter(self):
        with self._cond:
            if self._handle is None:
                raise TTSInvalidArgumentError.from_python(
                    "ttsm: the manager is closed", "create a new ttsm.Manager")
            self._active += 1
            return self._handle

    def _leave(self):
        with self._cond:
            self._active -= 1
            if self._active == 0:
                self._cond.notify_all()

    def load(self, engine, model=None, device="auto", language=None, model_path=None,
             repo_id=None, model_type=None, **params):
        """Loads (or finds in the cache) a model: a :class:`Model` holding one
        reference. Concurrent loads of one config share one load. Raises a
        TTSModelLoadingError subclass (or TTSInvalidArgumentError,
        TTSCancelledError) with the library's message, hint and attempts.
        The Model's ``attempts`` and ``fallback`` say what this load tried
        and whether it returned another model than the one asked for."""
        c = _Config(engine, model, device, language, model_path, repo_id, model_type, params)
        h = self._enter()
        try:
            out = ctypes.c_void_p()
            err = Error()
            self._progress_error.error = None
            rep = _lib.LoadReport()
            lib.ttsm_load_report_init(ctypes.byref(rep))
            st = lib.ttsm_load_with_report(h, ctypes.byref(c.cfg), ctypes.byref(out),
                                           ctypes.byref(rep), ctypes.byref(err))
        finally:
            self._leave()
        if st != Status.OK:
            e = from_c(st, err)
            cause = getattr(self._progress_error, "error", None)
            self._progress_error.error = None
            if isinstance(e, TTSCancelledError) and cause is not None:
                raise e from cause
            raise e
        return Model(out.value, rep)

    def loaded(self):
        """The cached entries, least recently used first (like `ollama ps`)."""
        h = self._enter()
        try:
            p = ctypes.POINTER(_lib.EntryInfo)()
            n = ctypes.c_size_t()
            err = Error()
            _check(lib.ttsm_manager_list(h, ctypes.byref(p), ctypes.byref(n), ctypes.byref(err)),
                   err)
        finally:
            self._leave()
        try:
            return [Entry(p[i].key.decode(), _text(p[i].engine), _text(p[i].model),
                          _text(p[i].device), p[i].bytes, p[i].refs, bool(p[i].pinned),
                          bool(p[i].loading), p[i].idle_seconds) for i in range(n.value)]
        finally:
            lib.ttsm_free(p)

    def stats(self):
        """A consistent snapshot of the counters (:class:`Stats`)."""
        h = self._enter()
        try:
            s = _lib.ManagerStats()
            lib.ttsm_manager_get_stats(h, ctypes.byref(s))
        finally:
            self._leave()
        devs = {}
        for i in range(min(s.n_devices, _lib.MANAGER_MAX_DEVICES)):
            d = s.devices[i]
            devs[_text(d.device)] = DeviceStats(None if d.budget == (1 << 64) - 1 else d.budget,
                                               d.in_use, d.reserved, d.peak, d.entries)
        return Stats(s.hits, s.misses, s.loads, s.evictions, s.failures, s.unloads,
                     s.invalidations, s.checkpoint_opens, s.entries, s.orphans, devs)

    def _keyed(self, fn, key):
        if isinstance(key, Model):
            key = key.key
        k = cstr(key, "key")
        h = self._enter()
        try:
            err = Error()
            _check(fn(h, k, ctypes.byref(err)), err)
        finally:
            self._leave()

    def pin(self, key):
        """Never evict the entry (by budget or keep-alive). `key`: a key or a Model."""
        self._keyed(lib.ttsm_pin, key)

    def unpin(self, key):
        self._keyed(lib.ttsm_unpin, key)

    def unload(self, key):
        """Removes an unreferenced entry now; refused while it is referenced."""
        self._keyed(lib.ttsm_unload, key)

    def invalidate(self, key):
        """The entry leaves the cache now; holders keep it until they let go."""
        self._keyed(lib.ttsm_invalidate, key)

    def sweep(self):
        """Evicts entries idle longer than keep_alive. @return how many."""
        h = self._enter()
        try:
            return lib.ttsm_manager_sweep(h)
        finally:
            self._leave()

    def close(self):
        """Destroys the cache (waiting for calls in flight). Models and
        tensors still referenced stay valid. Idempotent."""
        with self._cond:
            while self._active:
                self._cond.wait()
            h, self._handle = self._handle, None
        if h is not None:
            lib.ttsm_manager_destroy(h)



class Model(_Handle):
    """One reference to a loaded model (a cache entry). close() (or leaving a
    ``with`` block, or garbage collection) drops it; tensors taken from the
    model hold references of their own, so they outlive it safely."""

    _release = lib.ttsm_model_release

    def __init__(self, handle, report=None):
        self._handle = handle
        #: What the load that made this object tried, in order: LoadAttempt
        #: (model, device, code, message) per step.
        self.attempts = []
        #: None, or a Fallback when the model is not the one asked for.
        self.fallback = None
        if report is not None:
            self.attempts = [LoadAttempt(_text(s.model), _text(s.device), _status(s.code),
                                         _text(s.message))
                             for s in report.steps[:min(report.n_steps, len(report.steps))]]
            if report.fell_back:
                self.fallback = Fallback(_text(report.asked), _text(report.asked_device),
                                         _text(report.loaded), _text(report.loaded_device),
                                         _text(report.why))
        self.key = _text(lib.ttsm_model_key(handle))
        self.engine = _text(lib.ttsm_model_engine(handle))
        self.name = _text(lib.ttsm_model_name(handle))
        self.device = _text(lib.ttsm_model_device(handle))
        self.bytes = lib.ttsm_model_bytes(handle)
        self._components = []
        for i in range(lib.ttsm_model_component_count(handle)):
            kind = _text(lib.ttsm_model_component_kind(handle, i))
            ck = lib.ttsm_model_component_checkpoint(handle, i)
            fmt = _text(lib.ttsm_format_name(lib.ttsm_checkpoint_format(ck))) if ck else None
            self._components.append(Component(
                _text(lib.ttsm_model_component_name(handle, i)), kind,
                _text(lib.ttsm_model_component_path(handle, i)), fmt,
                lib.ttsm_model_tensor_count(handle, i)))

    def _h(self):
        if self._handle is None:
            raise TTSInvalidArgumentError.from_python("ttsm: the model is closed",
                                                      "load it again from its Manager")
        return self._handle

    @property
    def components(self):
        """Component names, in the model's order."""
        return [c.name for c in self._components]

    def component_info(self, component=None):
        """The :class:`Component` record of a component (name or index)."""
        return self._components[self._index(component, tensors=False)]

    def _index(self, component, tensors=True):
        comps = self._components
        if component is None:
            cands = [i for i, c in enumerate(comps) if c.kind == "tensors" or not tensors]
            if len(cands) == 1:
                return cands[0]
            raise TTSInvalidArgumentError.from_python(
                "%s has %d %scomponents (%s): name one" %
                (self.name, len(cands), "tensor " if tensors else "",
                 ", ".join(comps[i].name for i in cands)))
        if isinstance(component, int) and not isinstance(component, bool):
            if 0 <= component < len(comps):
                i = component
            else:
                raise TTSInvalidArgumentError.from_python(
                    "%s has no component %d (it has %d)" % (self.name, component, len(comps)))
        else:
            names = [c.name for c in comps]
            if component not in names:
                raise TTSInvalidArgumentError.from_python(
                    "%s has no component %r (components: %s)" %
                    (self.name, component, ", ".join(names)))
            i = names.index(component)
        if tensors and comps[i].kind != "tensors":
            raise TTSInvalidArgumentError.from_python(
                "component %r of %s is a %s file, not tensors" % (comps[i].name, self.name,
                                                                  comps[i].kind))
        return i

    def tensors(self, component=None, writable=False):
        """{name: :class:`Tensor`} of one tensors component (None: the only
        one), in file order. Each Tensor exports through DLPack without a
        copy; ``writable`` clears the read-only flag of versioned exports."""
        h = self._h()
        c = self._index(component)
        name = self._components[c].name
        out = {}
        for i in range(lib.ttsm_model_tensor_count(h, c)):
            t = Tensor(h, c, name, i, self.device, read_only=not writable)
            out[t.name] = t
        return out

    def state_dict(self, component=None):
        """{name: torch.Tensor} sharing the model's memory (no copy): one
        component, or with None every tensors component (names prefixed
        "<component>." when there are several). Each torch tensor keeps the
        model alive until it is freed. Writing into one changes the cached
        weights for every holder of this entry (never the file)."""
        h = self._h()
        if component is None:
            idx = [i for i, c in enumerate(self._components) if c.kind == "tensors"]
            prefix = len(idx) > 1
        else:
            idx = [self._index(component)]
            prefix = False
        out = collections.OrderedDict()
        for c in idx:
            cname = self._components[c].name
            for i in range(lib.ttsm_model_tensor_count(h, c)):
                info = lib.ttsm_model_get_tensor(h, c, i).contents
                name = _text(info.name)
                dtype = _text(lib.ttsm_dtype_name(info.dtype))
                key = cname + "." + name if prefix else name
                out[key] = to_torch(h, c, i, dtype, name)
        return out

    def metadata_entries(self, component=None):
        """[(key, type, value)] of a tensors component's checkpoint metadata:
        safetensors __metadata__, GGUF key/values, a PyTorch file's
        non-tensor values; type as the library names it ("str", "u32", ...)."""
        h = self._h()
        ck = lib.ttsm_model_component_checkpoint(h, self._index(component))
        res = []
        for i in range(lib.ttsm_checkpoint_metadata_count(ck)):
            e = lib.ttsm_checkpoint_metadata(ck, i).contents
            res.append((_text(e.key), _text(e.type), json.loads(_text(e.json))))
        return res

    @property
    def metadata(self):
        """{component: {key: value}} for every tensors component."""
        return {c.name: {k: v for k, _, v in self.metadata_entries(i)}
                for i, c in enumerate(self._components) if c.kind == "tensors"}

    def synthesize(self, text, language=None, voice=None, rate=None, pitch=None):
        """Speaks `text` with an engine that runs in ttsm (espeak-ng): returns
        (numpy int16 array, sample_rate). Other engines raise TTSEngineError
        (their weights are for a PyTorch runtime)."""
        import numpy as np
        h = self._h()
        o = _lib.SynthOptions()
        o.struct_size = ctypes.sizeof(_lib.SynthOptions)
        keep = [cstr(text, "text"), cstr(language, "language"), cstr(voice, "voice")]
        o.language, o.voice = keep[1], keep[2]
        o.rate = 0 if rate is None else int(rate)
        o.pitch = -1 if pitch is None else int(pitch)
        a = _lib.Audio()
        err = Error()
        _check(lib.ttsm_synthesize(h, keep[0], ctypes.byref(o), ctypes.byref(a),
                                   ctypes.byref(err)), err)
        try:
            n = a.n_samples
            samples = (np.ctypeslib.as_array(a.samples, shape=(n,)).copy() if n
                       else np.zeros(0, dtype=np.int16))
            return samples.astype(np.int16, copy=False), a.sample_rate
        finally:
            lib.ttsm_audio_free(ctypes.byref(a))

    def voices(self):
        """The voices of an engine that speaks in ttsm (espeak-ng): a list of
        {"name", "id", "languages", "gender"}; synthesize(voice=...) takes a
        name, an id or a language id. Other engines raise TTSEngineError."""
        h = self._h()
        out = ctypes.c_void_p()
        err = Error()
        _check(lib.ttsm_model_voices(h, ctypes.byref(out), ctypes.byref(err)), err)
        try:
            return json.loads(ctypes.string_at(out.value).decode("utf-8"))["voices"]
        finally:
            lib.ttsm_free(out)

    def close(self):
        """Drops this object's reference (idempotent)."""
        h, self._handle = self._handle, None
        if h is not None:
            self._release(h)


    def __repr__(self):
        return "ttsm.Model(%s/%s on %s, key %s, %d bytes)" % (self.engine, self.name,
                                                             self.device, self.key, self.bytes)
