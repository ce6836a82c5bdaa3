"""model.py - Model: one reference to a cache entry (components, tensors,
state_dict, bind, metadata, synthesis, the engine object a Python engine
built), made lazily so a cache hit from Python costs little more than the C
hit. Also the table of engine objects the cache holds (engines.py puts
them there, the library's destroy callback takes them out)."""
import collections
import ctypes
import json
import threading

from . import _lib
from ._lib import DLPACK_INNER, Error, cstr, lib
from ._lib import text as _text
from .errors import Status, TTSInvalidArgumentError, _status, from_c
from .tensor import Tensor, to_torch

Component = collections.namedtuple("Component", "name kind path format tensors")
Component.__doc__ = ("One component of a model: kind 'tensors', 'json' or 'blob'; format the "
                     "checkpoint format (tensors only); tensors their count.")
LoadAttempt = collections.namedtuple("LoadAttempt", "model device code message")
LoadAttempt.__doc__ = ("One step a load tried: the model and device asked for, its status "
                       "(a Status) and its error message ('' for the step that loaded).")
Fallback = collections.namedtuple("Fallback", "asked asked_device loaded loaded_device why")
Fallback.__doc__ = ("A load that returned another model than the one asked for: what was "
                    "asked, what was loaded (Model.name), and why (the asked model's error).")
BindResult = collections.namedtuple("BindResult", "missing_keys unexpected_keys")
BindResult.__doc__ = ("What Model.bind() left out (strict=False): module names no tensor "
                      "bound, and tensor names no module slot took.")

# Engine objects held by cache entries: address (the engine data the
# library stores) -> [object, holders]. The entry's reference to its object
# is this table's; the library's destroy callback drops it.
_held = {}
_held_lock = threading.Lock()


def hold(obj):
    """Keeps `obj` for a cache entry: @return the address to store in C."""
    with _held_lock:
        slot = _held.get(id(obj))
        if slot is None:
            _held[id(obj)] = [obj, 1]
        else:
            slot[1] += 1
    return id(obj)


def _drop(address, _held=_held, _lock=_held_lock):
    # The library calls this with no lock of its own held (engine data is
    # destroyed after the manager lock): dropping the object may run its
    # __del__ and free torch tensors, whose deleters take that lock.
    with _lock:
        slot = _held.get(address)
        if slot is None:
            return
        slot[1] -= 1
        obj = slot[0] if slot[1] == 0 else None
        if obj is not None:
            del _held[address]
    del obj  # outside the table's lock: its destructor may run here


DROP = _lib.DESTROY_FN(_drop)
# Entries may outlive this module (orphans at exit): the callback is never freed.
ctypes.pythonapi.Py_IncRef(ctypes.py_object(DROP))


def _check(st, err):
    if st != Status.OK:
        raise from_c(st, err)


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


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("ttsm: bind() needs PyTorch") from e
    return torch


class Model(_Handle):
    """One reference to a loaded model (a cache entry). close() (or leaving a
    ``with`` block, or garbage collection) drops it; tensors taken from the
    model hold references of their own, so they outlive it safely.

    The `weights` a Python engine's factory gets is a Model too, holding an
    *inner* reference: it and every tensor taken from it belong to the
    entry's own engine object, and never keep the entry in the cache."""

    _inner = False
    _info = None
    _comps = None
    _report = None

    def __init__(self, handle, report=None, inner=False):
        self._handle = handle
        if report is not None:
            self._report = report  # the load's ttsm_load_report, read on first use
        if inner:
            self._inner = True
            lib.ttsm_model_retain_inner(handle)

    def _h(self):
        if self._handle is None:
            raise TTSInvalidArgumentError.from_python("ttsm: the model is closed",
                                                      "load it again from its Manager")
        return self._handle

    def prefetch(self, wait=False):
        """Starts bringing every byte of the model into memory in the
        background (once per model; nothing to do in read mode or on a
        device). With wait=True, returns once that is done. Returns the
        bytes brought in when waiting, else None."""
        err = Error()
        _check(lib.ttsm_model_prefetch(self._h(), ctypes.byref(err)), err)
        if wait:
            return lib.ttsm_model_prefetch_wait(self._h())
        return None

    @property
    def attempts(self):
        """What the load that made this object tried, in order: a
        :class:`LoadAttempt` (model, device, code, message) per step."""
        r = self._report
        if r is None:
            return []
        return [LoadAttempt(_text(st.model), _text(st.device), _status(st.code),
                            _text(st.message))
                for st in r.steps[:min(r.n_steps, len(r.steps))]]

    @property
    def fallback(self):
        """None, or a :class:`Fallback` when the model is not the one asked for."""
        r = self._report
        if r is None or not r.fell_back:
            return None
        return Fallback(_text(r.asked), _text(r.asked_device), _text(r.loaded),
                        _text(r.loaded_device), _text(r.why))

    def _identity(self):
        # Read once, on first use: a hit that only wants .engine pays nothing.
        if self._info is None:
            h = self._h()
            self._info = (_text(lib.ttsm_model_key(h)), _text(lib.ttsm_model_engine(h)),
                          _text(lib.ttsm_model_name(h)), _text(lib.ttsm_model_device(h)),
                          lib.ttsm_model_bytes(h))
        return self._info

    @property
    def key(self):
        """The cache key of the entry (32 hex digits)."""
        return self._identity()[0]

    @property
    def engine_name(self):
        """The engine's canonical name ("file", "chatterbox", ...)."""
        return self._identity()[1]

    @property
    def name(self):
        """The model's name (after canonicalisation and fallback), else its path or repo id."""
        return self._identity()[2]

    @property
    def device(self):
        return self._identity()[3]

    @property
    def bytes(self):
        """Bytes the entry is charged on its device: weights (converted to the
        load dtype) plus what its engine object reported."""
        return self._identity()[4]

    @property
    def dtype(self):
        """The load dtype floating tensors were converted to ("float16",
        "bfloat16", "float32"), or None: as stored."""
        d = lib.ttsm_model_dtype(self._h())
        return {6: "float16", 7: "bfloat16", 10: "float32"}.get(d)

    @property
    def engine(self):
        """The object the engine's Python factory built for this entry (the
        same object for every holder of the entry), or None for engines
        without one."""
        p = lib.ttsm_model_engine_data(self._h())
        slot = _held.get(p) if p else None
        return slot[0] if slot else None

    @property
    def _components(self):
        if self._comps is None:
            h = self._h()
            comps = []
            for i in range(lib.ttsm_model_component_count(h)):
                kind = _text(lib.ttsm_model_component_kind(h, i))
                ck = lib.ttsm_model_component_checkpoint(h, i)
                fmt = _text(lib.ttsm_format_name(lib.ttsm_checkpoint_format(ck))) if ck else None
                comps.append(Component(
                    _text(lib.ttsm_model_component_name(h, i)), kind,
                    _text(lib.ttsm_model_component_path(h, i)), fmt,
                    lib.ttsm_model_tensor_count(h, i)))
            self._comps = comps
        return self._comps

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
            t = Tensor(h, c, name, i, self.device, read_only=not writable, inner=self._inner)
            out[t.name] = t
        return out

    def state_dict(self, component=None):
        """{name: torch.Tensor} sharing the model's memory (no copy): one
        component, or with None every tensors component (names prefixed
        "<component>." when there are several). Each torch tensor keeps the
        model alive until it is freed. Writing into one changes the cached
        weights for every holder of this entry (never the file).

        ``module.load_state_dict(m.state_dict())`` then *copies* them into
        the module's own parameters (twice the memory while both exist):
        :meth:`bind` puts these tensors into the module instead."""
        h = self._h()
        if component is None:
            idx = [i for i, c in enumerate(self._components) if c.kind == "tensors"]
            prefix = len(idx) > 1
        else:
            idx = [self._index(component)]
            prefix = False
        flags = DLPACK_INNER if self._inner else 0
        out = collections.OrderedDict()
        for c in idx:
            cname = self._components[c].name
            for i in range(lib.ttsm_model_tensor_count(h, c)):
                info = lib.ttsm_model_get_tensor(h, c, i).contents
                name = _text(info.name)
                dtype = _text(lib.ttsm_dtype_name(info.dtype))
                key = cname + "." + name if prefix else name
                out[key] = to_torch(h, c, i, dtype, name, flags)
        return out

    def bind(self, module, component=None, strict=True, prefix=""):
        """Puts this model's tensors into `module`'s parameters and buffers
        without copying them: each becomes a Parameter (requires_grad
        False) or buffer over the cached memory, so the module takes no
        memory of its own for its weights. Build the module on the meta
        device (``torch.device("meta")``) and nothing is allocated at all
        (torch 1.13 has no ``load_state_dict(assign=True)``; this replaces
        the Parameters instead).

        Tensor names are the module's state_dict names, with ``prefix``
        before them in the checkpoint; `component` as in
        :meth:`state_dict`. Names, shapes and dtypes are checked before
        anything changes: a mismatch raises TTSInvalidArgumentError listing
        what differs. ``strict`` (default) also refuses module slots no
        tensor fills and tensors no slot takes; with strict=False they are
        returned as a :class:`BindResult`. Tied parameters (one Parameter
        under several names) stay tied."""
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise TTSInvalidArgumentError.from_python(
                "bind() wants a torch.nn.Module, not %s" % type(module).__name__)
        sd = self.state_dict(component)
        if prefix:
            sd = collections.OrderedDict((k[len(prefix):], v) for k, v in sd.items()
                                         if k.startswith(prefix))
        # Every slot of the module (duplicates included, for tied weights),
        # grouped by the tensor it holds now.
        groups = collections.OrderedDict()
        for mod_name, mod in module.named_modules(remove_duplicate=False):
            dot = mod_name + "." if mod_name else ""
            for local, p in mod._parameters.items():
                if p is not None:
                    groups.setdefault(id(p), (p, True, []))[2].append((mod, local, dot + local))
            skip = getattr(mod, "_non_persistent_buffers_set", set())
            for local, b in mod._buffers.items():
                if b is not None and local not in skip:
                    groups.setdefault(id(b), (b, False, []))[2].append((mod, local, dot + local))
        missing, mismatched, plan, taken = [], [], [], set()
        for orig, is_param, slots in groups.values():
            names = [full for _, _, full in slots]
            found = [n for n in names if n in sd]
            if not found:
                missing.extend(names)
                continue
            taken.update(found)
            t = sd[found[0]]
            if tuple(t.shape) != tuple(orig.shape) or t.dtype != orig.dtype:
                mismatched.append("%s: module %s %s, weights %s %s" % (
                    found[0], tuple(orig.shape), str(orig.dtype).replace("torch.", ""),
                    tuple(t.shape), str(t.dtype).replace("torch.", "")))
                continue
            plan.append((t, is_param, slots))
        unexpected = [k for k in sd if k not in taken]
        problems = []
        if mismatched:
            problems.append("%d mismatched (%s)" % (len(mismatched), _some(mismatched)))
        if strict and missing:
            problems.append("%d missing from the weights (%s)" % (len(missing), _some(missing)))
        if strict and unexpected:
            problems.append("%d tensors no module slot takes (%s)" % (len(unexpected),
                                                                      _some(unexpected)))
        if problems:
            raise TTSInvalidArgumentError.from_python(
                "bind %s into %s: %s" % (self.name, type(module).__name__, "; ".join(problems)),
                hint="build the module with the checkpoint's shapes and dtype (the dtype load "
                     "param converts at load), or pass prefix=/component=; strict=False binds "
                     "what matches")
        for t, is_param, slots in plan:
            value = torch.nn.Parameter(t, requires_grad=False) if is_param else t
            for mod, local, _ in slots:
                # Through the module's own __setattr__: some keep views of
                # their parameters (an RNN's flat weight list) up to date there.
                setattr(mod, local, value)
        return BindResult(missing, unexpected)

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

    def close(self, _release=lib.ttsm_model_release, _inner=lib.ttsm_model_release_inner):
        """Drops this object's reference (idempotent). The identity (key,
        name, device, bytes) stays readable."""
        if self._handle is not None and self._info is None:
            self._identity()
        h, self._handle = self._handle, None
        if h is not None:
            (_inner if self._inner else _release)(h)

    def __repr__(self):
        if self._handle is None and self._info is None:
            return "ttsm.Model(closed)"
        return "ttsm.Model(%s/%s on %s, key %s, %d bytes)" % (self.engine_name, self.name,
                                                             self.device, self.key, self.bytes)


def _some(names, n=5):
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
