"""registry.py - Python engines in the one cache: register_engine() attaches
a factory to an engine from a manifest (the library still resolves and
loads its files), and the library calls it back once per load, after the
weights are on their device, through the same build hook a C engine uses
(ttsm_engine_caps.build). The object it returns is the entry's engine
object: held by the cache, handed to every holder (Model.engine), charged
to the device budget and dropped when the entry leaves the cache. Also
engine_info() for the dropdowns of a host's nodes."""
import collections
import ctypes
import dataclasses
import json
import os
import sys
import threading
import traceback
import weakref

from . import _lib
from ._lib import Error, cstr, lib
from ._lib import text as _text
from .errors import Status, TTSError, TTSInvalidArgumentError, TTSModelNotFoundError, from_c
from .model import DROP, Model, hold


@dataclasses.dataclass(frozen=True)
class LoadConfig:
    """What a factory is asked to build: the fields of ttsm_load_config as
    the library made them canonical (engine and model names, the language
    where it selects the model), the device resolved ("cpu", "cuda:0"),
    every param as given, the cache key and the load dtype."""
    engine: str
    model_type: str
    model_name: str
    device: str
    language: str = None
    model_path: str = None
    repo_id: str = None
    params: dict = dataclasses.field(default_factory=dict)
    key: str = None
    dtype: str = None  # "float16", "bfloat16", "float32" or None: as stored


class BuildContext:
    """The factory's third argument: the device, the bytes admission
    reserved for what the factory builds (``estimate``), whether this load
    rebuilds an invalidated entry (``recovering``), and ``charge(nbytes)``
    to report device memory the object holds beyond the weights (on CUDA
    the growth of torch.cuda.memory_allocated() across the call is added by
    itself). Valid during the call only."""

    def __init__(self, ptr, device):
        self._ptr = ptr
        self.device = device
        self.estimate = lib.ttsm_factory_ctx_estimate(ptr)
        self.recovering = bool(lib.ttsm_factory_ctx_recovering(ptr))
        self.charged = 0

    def charge(self, nbytes):
        """The object holds `nbytes` more on the device (adds up)."""
        if self._ptr is None:
            raise ValueError("ttsm: charge() after the factory returned")
        n = int(nbytes)
        if n < 0:
            raise TTSInvalidArgumentError.from_python("charge(%d): bytes cannot be negative" % n)
        err = Error()
        st = lib.ttsm_factory_ctx_charge(self._ptr, n, ctypes.byref(err))
        if st != Status.OK:
            raise from_c(st, err)
        self.charged += n


class _Engine:
    def __init__(self, name, factory, recover, extra):
        self.name, self.factory, self.recover, self.extra = name, factory, recover, extra
        self.objects = weakref.WeakValueDictionary()  # key -> last object (for recover)


_lock = threading.Lock()
_by_name = {}   # canonical engine name -> _Engine
_by_id = {}     # the caps.user the library passes back -> _Engine
_failures = collections.OrderedDict()  # error message -> the factory's exception
_failures_lock = threading.Lock()


def failure_cause(e):
    """The Python exception behind a TTSEngineError a factory caused, if any
    (every waiter of the failed load gets the same message)."""
    if e.code != Status.ERR_ENGINE:
        return None
    with _failures_lock:
        return _failures.get(e.message)


def _remember(message, exc):
    with _failures_lock:
        _failures[message] = exc
        _failures.move_to_end(message)
        while len(_failures) > 64:
            _failures.popitem(last=False)


def _config(cfg, device, key, dtype):
    def s(b):
        return None if b is None else b.decode("utf-8", "replace")
    params = {}
    for i in range(cfg.n_params):
        params[s(cfg.params[i].key)] = s(cfg.params[i].value)
    return LoadConfig(s(cfg.engine), s(cfg.model_type) or "tts", s(cfg.model_name), device,
                      s(cfg.language), s(cfg.model_path), s(cfg.repo_id), params, key, dtype)


def fill_error(err, code, message, hint=b""):
    """Writes a ttsm_error the library passed to a callback (may be NULL)."""
    text = message.encode("utf-8", "replace")[:_lib.ERROR_MESSAGE_MAX - 4]
    if err:
        ctypes.memset(ctypes.addressof(err.contents), 0, ctypes.sizeof(Error))
        e = err.contents
        e.code = code
        e.message = text
        e.hint = hint[:_lib.ERROR_HINT_MAX - 1]
    return text.decode("utf-8", "replace")


def _fail(err, message, exc):
    text = fill_error(err, Status.ERR_ENGINE, message,
                      b"the factory's exception is this error's __cause__")
    _remember(text, exc)
    return Status.ERR_ENGINE


def _cuda_allocated(device):
    torch = sys.modules.get("torch")
    if torch is None or not device.startswith("cuda:"):
        return None
    try:
        if not torch.cuda.is_available():
            return None
        return torch.cuda.memory_allocated(int(device[5:]))
    except Exception:
        return None


def _build(cfg_p, ctx_p, model_p, err_p):
    # Called by the library once per load, after the weights are on their
    # device, with no ttsm lock held (the entry is loading: other loads of
    # the key wait). Every exception is turned into the load's error.
    weights = ctx = None
    try:
        rec = _by_id[lib.ttsm_factory_ctx_user(ctx_p)]
        device = _text(lib.ttsm_factory_ctx_device(ctx_p))
        key = _text(lib.ttsm_model_key(model_p))
        dtype = {6: "float16", 7: "bfloat16", 10: "float32"}.get(lib.ttsm_model_dtype(model_p))
        config = _config(cfg_p.contents, device, key, dtype)
        ctx = BuildContext(ctx_p, device)
        weights = Model(model_p, inner=True)
        if ctx.recovering and rec.recover is not None:
            rec.recover(rec.objects.get(key), config)
        before = _cuda_allocated(device)
        obj = rec.factory(config, weights, ctx)
        if before is not None:
            grown = _cuda_allocated(device) - before
            if grown > 0:
                ctx.charge(grown)
        ctx._ptr = None
        if obj is not None:
            lib.ttsm_model_set_engine_data(model_p, hold(obj), DROP)
            try:
                rec.objects[key] = obj
            except TypeError:  # not weakly referable: recover() gets None
                pass
        return 0
    except BaseException as e:
        if ctx is not None:
            ctx._ptr = None
        # The frames keep the factory's locals (the weights, tensors bound to
        # modules) alive: cleared, so the failed load's memory goes now.
        traceback.clear_frames(e.__traceback__)
        if weights is not None:
            weights.close()
        label = _text(lib.ttsm_model_name(model_p)) if model_p else "?"
        engine = _text(lib.ttsm_model_engine(model_p)) if model_p else "?"
        return _fail(err_p, "%s/%s: engine factory raised %s: %s" % (
            engine, label, type(e).__name__, str(e).splitlines()[0] if str(e) else ""), e)


_BUILD = _lib.BUILD_FN(_build)
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_BUILD))  # called for as long as the process runs


def register_engine(name, factory, *, manifest=None, recover=None, extra_bytes=None,
                    extra_ratio=None):
    """Makes ``factory(config, weights, ctx)`` build the engine object of
    every load of engine `name`: `config` a :class:`LoadConfig`, `weights`
    the loaded :class:`Model` (its tensors, ``state_dict()`` and ``bind()``
    belong to the object: they never keep the entry cached), `ctx` a
    :class:`BuildContext`. What it returns is what the cache holds for the
    entry (``Model.engine``), charged to the device budget and dropped when
    the entry is evicted, unloaded or invalidated.

    `name` is an engine from a manifest (its files are found and loaded as
    for any load), or a new one given by `manifest` (a dict, or the path of
    a JSON file; docs/engines.md). `recover(old_object_or_None, config)`
    runs before the rebuild of an invalidated entry (engines that can
    corrupt). `extra_bytes`/`extra_ratio`: what admission reserves for the
    object before the factory runs (default: the manifest's
    "engine_memory"). Registering a name again replaces its factory and
    recover for later loads. Process-wide, like the library's registry."""
    if not callable(factory):
        raise TTSInvalidArgumentError.from_python("factory must be callable")
    if recover is not None and not callable(recover):
        raise TTSInvalidArgumentError.from_python("recover must be callable")
    extra = (int(extra_bytes or 0), float(extra_ratio or 0))
    if extra[0] < 0 or not 0 <= extra[1] <= 1e6:
        raise TTSInvalidArgumentError.from_python("extra_bytes and extra_ratio must be >= 0")
    with _lock:
        if manifest is not None:
            _add_manifest(manifest, name)
        e = lib.ttsm_engine_find(cstr(name, "engine"))
        if not e or not lib.ttsm_engine_manifest(e):
            raise TTSModelNotFoundError.from_python(
                "no engine from a manifest is called %r: a Python engine's files come from "
                "one (give manifest=)" % (name,),
                hint="ttsm.engines() lists the engines")
        canonical = _text(lib.ttsm_engine_name(e))
        rec = _by_name.get(canonical)
        if rec is not None:
            if (extra_bytes is not None or extra_ratio is not None) and extra != rec.extra:
                raise TTSInvalidArgumentError.from_python(
                    "%s: extra_bytes/extra_ratio are fixed at the first registration" % canonical)
            rec.factory, rec.recover = factory, recover
            return
        rec = _Engine(canonical, factory, recover, extra)
        uid = len(_by_id) + 1
        caps = lib.ttsm_engine_caps_default()
        caps.build = _BUILD
        caps.user = uid
        caps.extra_bytes, caps.extra_ratio = extra
        err = Error()
        st = lib.ttsm_register_engine(cstr(canonical, "engine"), None, ctypes.byref(caps),
                                      ctypes.byref(err))
        if st != Status.OK:
            raise from_c(st, err)
        _by_id[uid] = rec
        _by_name[canonical] = rec


def _add_manifest(manifest, name):
    if isinstance(manifest, dict):
        text = json.dumps(manifest).encode("utf-8")
        source = "python:%s" % (manifest.get("name") or name)
    elif isinstance(manifest, (str, bytes, os.PathLike)):
        path = os.fspath(manifest)
        with open(path, "rb") as f:
            text = f.read()
        source = os.fsdecode(path)
    else:
        raise TTSInvalidArgumentError.from_python(
            "manifest must be a dict or the path of a JSON file, not %s" % type(manifest).__name__)
    err = Error()
    st = lib.ttsm_engines_add_manifest(text, len(text), cstr(source, "source"),
                                       ctypes.byref(err))
    if st != Status.OK:
        raise from_c(st, err)


# ---- introspection ----------------------------------------------------------

EngineInfo = collections.namedtuple(
    "EngineInfo", "name aliases description runtime source model_types languages devices "
                  "default_device default_model capabilities params models sample_rate "
                  "engine_memory python")
EngineInfo.__doc__ = ("An engine as a host's node shows it: models, languages, types, params "
                      "with their allowed values, capabilities, the default model.")
ModelInfo = collections.namedtuple("ModelInfo", "name language types")
ParamInfo = collections.namedtuple("ParamInfo", "default values identity dtype")
ParamInfo.__doc__ = ("A param: its default, its allowed values (None: any), whether it is part "
                     "of the cache key, and the load dtype each value selects ({} when none).")

_CAPS = (("supports_voice_conversion", 1), ("has_fallback", 2), ("can_corrupt", 3),
         ("requires_special_init", 4), ("language_selects_model", 5), ("single_instance", 6))


def engine_info(name):
    """An :class:`EngineInfo` for engine `name` (a name or an alias)."""
    e = lib.ttsm_engine_find(cstr(name, "engine"))
    if not e:
        from .manager import engines
        raise TTSModelNotFoundError.from_python(
            "engine not found: %s (engines: %s)" % (name, ", ".join(engines())))

    def strs(count, get):
        return [_text(get(e, i)) for i in range(count(e))]

    text = lib.ttsm_engine_manifest(e)
    m = json.loads(text.decode("utf-8")) if text else {}
    first_type = (m.get("model_types") or ["tts"])[0]
    identity = set(m.get("identity_params", []))
    params = {k: ParamInfo(v["default"], v.get("values"), k in identity, v.get("dtype", {}))
              for k, v in m.get("params", {}).items()}
    params["dtype"] = ParamInfo(None, ["float16", "bfloat16", "float32"], True, {})
    langs = strs(lib.ttsm_engine_model_count, lib.ttsm_engine_model_language)
    models = [ModelInfo(n, langs[i], (m["models"][i].get("types") or [first_type]) if m else [])
              for i, n in enumerate(strs(lib.ttsm_engine_model_count,
                                         lib.ttsm_engine_model_name))]
    caps = {k: bool(lib.ttsm_engine_has(e, c)) for k, c in _CAPS}
    caps["recovery"] = _text(lib.ttsm_engine_recovery(e))
    devices = _text(lib.ttsm_engine_devices(e))
    canonical = _text(lib.ttsm_engine_name(e))
    return EngineInfo(
        canonical, strs(lib.ttsm_engine_alias_count, lib.ttsm_engine_alias),
        _text(lib.ttsm_engine_description(e)), _text(lib.ttsm_engine_runtime(e)),
        _text(lib.ttsm_engine_source(e)),
        strs(lib.ttsm_engine_model_type_count, lib.ttsm_engine_model_type),
        strs(lib.ttsm_engine_language_count, lib.ttsm_engine_language),
        devices.split(",") if devices else None, m.get("default_device"),
        _text(lib.ttsm_engine_default_model(e)), caps, params, models, m.get("sample_rate"),
        m.get("engine_memory"), canonical in _by_name)
