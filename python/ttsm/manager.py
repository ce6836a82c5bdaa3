"""manager.py - Manager (one libttsm cache: budgets, keep-alive and its
timer, single-flight loads, free(), on_evict, the listing of installed
models) and the module-level helpers (cache_key, devices, engines). Every
call goes through ctypes, which releases the GIL, so loads in several
threads run in parallel; the library calls back into Python (factories,
engine object destroys, on_evict, progress) only with no lock of its own
held."""
import atexit
import collections
import ctypes
import json
import os
import re
import sys
import threading
import time
import types
import weakref

from . import _lib
from ._lib import Error, LoadConfig, Param, cstr, lib
from ._lib import text as _text
from .errors import Status, TTSCancelledError, TTSInvalidArgumentError, from_c
from .model import Fallback, LoadAttempt, Model, _Handle

Entry = collections.namedtuple(
    "Entry", "key engine model device bytes refs pinned loading idle_seconds")
Entry.__doc__ = "One cache entry, as ttsm_manager_list() reports it."
DeviceStats = collections.namedtuple("DeviceStats", "budget in_use reserved peak entries")
DeviceStats.__doc__ = "Bytes on one device; budget None: none configured."
Stats = collections.namedtuple(
    "Stats", "hits misses loads evictions failures unloads invalidations checkpoint_opens "
             "entries orphans devices")
Stats.__doc__ = "Counters of a manager; devices maps a device name to DeviceStats."
Device = collections.namedtuple("Device", "name description total_bytes free_bytes")
Installed = collections.namedtuple(
    "Installed", "engine model model_type language installed complete missing bytes modified "
                 "where pull")
Installed.__doc__ = ("One model `ttsm ls` lists: installed (a file found), complete, files "
                     "missing, bytes on disk, modified (ISO 8601, UTC), where (each root or "
                     "hub repo it was found in), pull (what a pull would add: the components "
                     "and the `ttsm pull` command, None when complete).")
Resolution = collections.namedtuple(
    "Resolution", "engine model model_type language complete installed missing hub_cache "
                  "roots warnings components")
Resolution.__doc__ = ("What `ttsm resolve` shows: where each file of a model comes from, the "
                      "roots searched and what was wrong with them.")
ResolvedComponent = collections.namedtuple(
    "ResolvedComponent", "name kind files path origin from_model borrowed shared optional "
                         "searched names where download broken bytes modified location")
ResolvedComponent.__new__.__defaults__ = (None,) * 3  # bytes, modified, location: found files

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
        self.ref = ctypes.byref(cfg)
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
    _check(lib.ttsm_cache_key(c.ref, out, ctypes.byref(err)), err)
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
    keep_alive_timer: a thread evicts them when their time is up (else the
    next call does); io_mode: "mmap" (private copy-on-write mapping) or
    "read"; allow_cpu_fallback: a load that does not fit its device loads on
    cpu; device_reserve: bytes kept free on CUDA devices (default 512 MiB);
    engines_dir: a folder of extra engine manifests; comfyui: a ComfyUI
    folder or a list of them (default $TTSM_COMFYUI_PATH): each one's
    models/ and the TTS folders its extra_model_paths.yaml names are searched
    after models_dir; progress: callable(key, done_bytes, total_bytes), a
    true result cancels the load (and a download it runs);
    on_evict: callable(entry, reason) told what left the cache (an
    :class:`Entry`; reason "budget", "keep-alive", "free",
    "single-instance", "unload" or "invalidate"), on the thread that
    evicted it, with no ttsm lock held; verify_on_load: also know files by a hash of their headers and their
    first and last 64 KiB, so a same-size rewrite with its modification time
    put back is noticed on the next miss (reads those bytes on every miss);
    download: True pulls what a model lacks from the Hugging Face Hub
    before it loads (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE; docs/hub.md),
    False (default) raises TTSModelNotFoundError whose hint gives the
    `ttsm pull` command; download_jobs: files fetched in parallel (default 4);
    prefetch: every load starts bringing the model's bytes into memory in
    the background (Model.prefetch()).

    Thread-safe. close() (or leaving a ``with`` block) destroys the cache:
    models and tensors still referenced stay valid, and their memory goes
    with the last of them."""

    def __init__(self, models_dir=None, hf_cache=None, budgets=None, keep_alive=None,
                 io_mode="mmap", allow_cpu_fallback=False, device_reserve=None,
                 engines_dir=None, progress=None, comfyui=None, keep_alive_timer=False,
                 on_evict=None, verify_on_load=False, download=False, download_jobs=None,
                 prefetch=False):
        self._handle = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._configs = {}
        self._progress = progress is not None
        o = _lib.ManagerOptions()
        o.struct_size = ctypes.sizeof(_lib.ManagerOptions)
        o.device_reserve_bytes = (_lib.DEFAULT_DEVICE_RESERVE if device_reserve is None
                                  else parse_size(device_reserve, "device_reserve"))
        o.keep_alive_ms = parse_duration(keep_alive)
        o.keep_alive_timer = 1 if keep_alive_timer else 0
        if io_mode not in ("mmap", "read"):
            raise TTSInvalidArgumentError.from_python(
                "io_mode must be 'mmap' or 'read', not %r" % (io_mode,))
        o.io_mode = _lib.IO_MMAP if io_mode == "mmap" else _lib.IO_READ
        o.allow_cpu_fallback = 1 if allow_cpu_fallback else 0
        o.verify_on_load = 1 if verify_on_load else 0
        o.prefetch = 1 if prefetch else 0
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
        if not isinstance(download, bool):
            raise TTSInvalidArgumentError.from_python("download must be True or False")
        o.download = _lib.DOWNLOAD_MISSING if download else _lib.DOWNLOAD_NEVER
        if download_jobs is not None:
            if (isinstance(download_jobs, bool) or not isinstance(download_jobs, int) or
                    not 1 <= download_jobs <= _lib.PULL_MAX_JOBS):
                raise TTSInvalidArgumentError.from_python(
                    "download_jobs must be an int in 1..%d" % _lib.PULL_MAX_JOBS)
            o.download_jobs = download_jobs
        self._roots = (o.models_dirs, o.hf_cache, o.comfyui_dirs)  # for ls() and resolve()
        self._progress_error = threading.local()
        if progress is not None:
            if not callable(progress):
                raise TTSInvalidArgumentError.from_python("progress must be callable")
            # Kept on the object: C calls it for as long as the manager lives.
            self._progress_cb = _lib.PROGRESS_FN(self._make_progress(progress))
            o.progress = self._progress_cb
        if on_evict is not None:
            if not callable(on_evict):
                raise TTSInvalidArgumentError.from_python("on_evict must be callable")
            self._evict_cb = _lib.EVICT_FN(_make_on_evict(on_evict))
            o.on_evict = self._evict_cb
        h = ctypes.c_void_p()
        err = Error()
        _check(lib.ttsm_manager_create(ctypes.byref(o), ctypes.byref(h), ctypes.byref(err)), err)
        self._handle = h.value
        _live.add(self)

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
        with self._lock:
            if self._handle is None:
                raise TTSInvalidArgumentError.from_python(
                    "ttsm: the manager is closed", "create a new ttsm.Manager")
            self._active += 1
            return self._handle

    def _leave(self):
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._idle.notify_all()

    def _config(self, engine, model, device, language, model_path, repo_id, model_type, params):
        # A config seen before is reused as it is (the library only reads it
        # during a call): a cache hit then builds nothing.
        try:
            memo = (engine, model, device, language, model_path, repo_id, model_type,
                    tuple(params.items()) if params else None)
            c = self._configs.get(memo)
        except TypeError:  # an unhashable param value: build it every time
            memo, c = None, None
        if c is None:
            c = _Config(engine, model, device, language, model_path, repo_id, model_type, params)
            if memo is not None:
                if len(self._configs) >= 256:
                    self._configs.clear()
                self._configs[memo] = c
        return c

    def load(self, engine, model=None, device="auto", language=None, model_path=None,
             repo_id=None, model_type=None, **params):
        """Loads (or finds in the cache) a model: a :class:`Model` holding one
        reference (its ``engine`` is the object a Python engine's factory
        built). Concurrent loads of one config share one load (and one
        factory call). Raises a TTSModelLoadingError subclass (or
        TTSInvalidArgumentError, TTSCancelledError) with the library's
        message, hint and attempts; a factory's exception is the
        ``__cause__`` of the TTSEngineError. The Model's ``attempts`` and
        ``fallback`` say what this load tried and whether it returned
        another model than the one asked for."""
        c = self._config(engine, model, device, language, model_path, repo_id, model_type,
                         params)
        h = self._enter()
        try:
            out = ctypes.c_void_p()
            err = Error()
            rep = _lib.LoadReport()  # read by the Model when asked (attempts, fallback)
            rep.struct_size = _REPORT_SIZE
            if self._progress:
                self._progress_error.error = None
            st = _load(h, c.ref, ctypes.byref(out), ctypes.byref(rep), ctypes.byref(err))
        finally:
            self._leave()
        if st != 0:
            self._raise(st, err)
        return Model(out.value, rep)

    def _raise(self, st, err):
        e = from_c(st, err)
        cause = None
        if self._progress:
            cause = getattr(self._progress_error, "error", None)
            self._progress_error.error = None
        if cause is None:
            from .registry import failure_cause
            cause = failure_cause(e)
        if cause is not None and not isinstance(cause, Exception):
            raise cause  # KeyboardInterrupt and the like, as they were
        if cause is not None:
            raise e from cause
        raise e

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
            return [_entry(p[i]) for i in range(n.value)]
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
        """Removes an unreferenced entry now (and drops its engine object);
        refused while it is referenced."""
        self._keyed(lib.ttsm_unload, key)

    def invalidate(self, key):
        """The entry leaves the cache now; holders keep it (and its engine
        object) until they let go. The next load of the key rebuilds it,
        calling the engine's recover hook first."""
        self._keyed(lib.ttsm_invalidate, key)

    def sweep(self):
        """Evicts entries idle longer than keep_alive. @return how many."""
        h = self._enter()
        try:
            return lib.ttsm_manager_sweep(h)
        finally:
            self._leave()

    def free(self, device, nbytes):
        """Evicts idle entries of `device` (least recently used first) until
        `nbytes` fit under its limit (its budget, and on CUDA the free
        memory minus the reserve), as a host's free_memory() does before it
        allocates; their memory is gone when this returns. @return the bytes
        that fit now (None: the device has no limit), which may be fewer
        than asked when the rest is referenced or pinned."""
        dev = cstr(device, "device")
        n = parse_size(nbytes, "nbytes")
        h = self._enter()
        try:
            avail = ctypes.c_uint64()
            err = Error()
            _check(lib.ttsm_manager_free(h, dev, n, ctypes.byref(avail), ctypes.byref(err)), err)
        finally:
            self._leave()
        return None if avail.value == (1 << 64) - 1 else avail.value

    def resolve(self, engine, model=None, language=None, model_path=None, repo_id=None,
                model_type=None, **params):
        """Where every file of a model comes from, as `ttsm resolve --json`
        shows it (a :class:`Resolution`; nothing is opened), in this
        manager's roots. Raises TTSModelNotFoundError for an unknown model
        or language."""
        return _resolve(_Config(engine, model, "cpu", language, model_path, repo_id,
                                model_type, params), *self._roots)

    def ls(self, engine=None, all=False):
        """The models found in this manager's roots and hub cache, as
        `ttsm ls --json` lists them: [:class:`Installed`] (all=True also
        lists models with no file at all)."""
        return list_installed(engine, all, *self._roots)

    def close(self):
        """Destroys the cache (waiting for calls in flight; stopping the
        keep-alive timer; dropping the engine objects of entries nobody
        holds). Models and tensors still referenced stay valid. Idempotent."""
        with self._lock:
            while self._active:
                self._idle.wait()
            h, self._handle = self._handle, None
        if h is not None:
            lib.ttsm_manager_destroy(h)


_load = lib.ttsm_load_with_report
_REPORT_SIZE = ctypes.sizeof(_lib.LoadReport)


def _entry(e):
    return Entry(e.key.decode(), _text(e.engine), _text(e.model), _text(e.device), e.bytes,
                 e.refs, bool(e.pinned), bool(e.loading), e.idle_seconds)


def _make_on_evict(fn):
    def cb(user, info, reason, _entry=_entry, _text=_text, _sys=sys):
        try:
            fn(_entry(info.contents), _text(reason))
        except BaseException as e:  # nobody to raise it to: reported like __del__'s
            _sys.unraisablehook(types.SimpleNamespace(
                exc_type=type(e), exc_value=e, exc_traceback=e.__traceback__,
                err_msg="Exception ignored in ttsm on_evict callback", object=fn))
    return cb


def _report(c, models_dirs, hf_cache, comfyui_dirs):
    o = _lib.ManagerOptions()
    o.struct_size = ctypes.sizeof(_lib.ManagerOptions)
    o.models_dirs, o.hf_cache, o.comfyui_dirs = models_dirs, hf_cache, comfyui_dirs
    out = ctypes.c_void_p()
    err = Error()
    _check(lib.ttsm_resolve_with(c.ref, ctypes.byref(o), ctypes.byref(out), ctypes.byref(err)),
           err)
    try:
        return json.loads(ctypes.string_at(out.value).decode("utf-8"))
    finally:
        lib.ttsm_free(out)


def _resolution(r):
    comps = [ResolvedComponent(**{k: x[k] for k in ResolvedComponent._fields if k in x})
             for x in r["components"]]
    return Resolution(r["engine"], r["model"], r["model_type"], r["language"], r["complete"],
                      r["installed"], r["missing"], r["hub_cache"], r["roots"], r["warnings"],
                      comps)


def _resolve(c, models_dirs, hf_cache, comfyui_dirs=None):
    return _resolution(_report(c, models_dirs, hf_cache, comfyui_dirs))


def _where_text(loc):
    if "repo" in loc:
        return "hub %s@%s (%s)" % (loc["repo"], loc.get("revision") or "?",
                                   (loc.get("commit") or "")[:7])
    return loc.get("root") or ""


def _installed(r):
    """A `ttsm ls` line from a resolve report: what the model's own files
    (not borrowed or shared ones) weigh, when they last changed, where."""
    seen, where, names, nbytes, modified = set(), [], [], 0, 0
    for c in r["components"]:
        path = c.get("path")
        if not path or path in seen or c.get("borrowed") or c.get("shared"):
            continue
        seen.add(path)
        nbytes += c.get("bytes") or 0
        modified = max(modified, c.get("modified") or 0)
        loc = c.get("location")
        if isinstance(loc, dict) and _where_text(loc) not in names:
            names.append(_where_text(loc))
            where.append(loc)
    iso = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(modified)) if modified else None)
    return Installed(r["engine"], r["model"], r["model_type"], r["language"], r["installed"],
                     r["complete"], r["missing"], nbytes, iso, where, r.get("pull"))


def list_installed(engine=None, all=False, models_dirs=None, hf_cache=None, comfyui_dirs=None):
    """What `ttsm ls` lists (see Manager.ls), for explicit roots (bytes or
    str, colon-separated; None: the environment's)."""
    if isinstance(models_dirs, str):
        models_dirs = cstr(models_dirs, "models_dirs")
    if isinstance(hf_cache, str):
        hf_cache = cstr(hf_cache, "hf_cache")
    if isinstance(comfyui_dirs, str):
        comfyui_dirs = cstr(comfyui_dirs, "comfyui_dirs")
    only = None
    if engine is not None:
        only = lib.ttsm_engine_find(cstr(engine, "engine"))
        if not only:
            from .errors import TTSModelNotFoundError
            raise TTSModelNotFoundError.from_python(
                "engine not found: %s (engines: %s)" % (engine, ", ".join(engines())))
    res = []
    for i in range(lib.ttsm_engine_count()):
        e = lib.ttsm_engine_get(i)
        if (only and e != only) or not lib.ttsm_engine_manifest(e):
            continue
        name = _text(lib.ttsm_engine_name(e))
        for m in range(lib.ttsm_engine_model_count(e)):
            model = _text(lib.ttsm_engine_model_name(e, m))
            # One line per model: its first type that resolves as itself.
            for t in range(lib.ttsm_engine_model_type_count(e)):
                mtype = _text(lib.ttsm_engine_model_type(e, t))
                try:
                    r = _report(_Config(name, model, "cpu", None, None, None, mtype, None),
                                models_dirs, hf_cache, comfyui_dirs)
                except Exception:  # a model without this type
                    continue
                if r["model"] != model:
                    continue
                if all or r["installed"]:
                    res.append(_installed(r))
                break
    return res


# Managers still open when the interpreter exits are closed first: the
# keep-alive timer is a thread of the library that calls back into Python,
# and must stop while Python still runs.
_live = weakref.WeakSet()


@atexit.register
def _close_all():
    for m in list(_live):
        try:
            m.close()
        except Exception:
            pass
