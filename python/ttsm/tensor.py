"""tensor.py - one tensor of a loaded model as a DLPack producer
(`__dlpack__`, `__dlpack_device__`), and the zero-copy conversion to
torch.Tensor that Model.state_dict() uses. A Tensor holds its own model
reference; every exported DLPack tensor holds another (inside libttsm),
dropped by its deleter when the consumer frees it."""
import ctypes
import threading

from . import _dlpack
from ._lib import DLPACK_BITS, DLPACK_BYTES, DLPACK_INNER, DLPACK_WRITABLE, Error, lib, text
from .errors import Status, TTSUnsupportedDtypeError, from_c

# ttsm dtype name -> name of the torch dtype with the same bits. Looked up
# with getattr at run time: older torch lacks some (1.13: no uint16, no
# float8), and those tensors cannot become torch tensors there.
TORCH_DTYPE_NAMES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16",
    "F16": "float16", "BF16": "bfloat16", "U32": "uint32", "I32": "int32", "F32": "float32",
    "U64": "uint64", "I64": "int64", "F64": "float64", "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn", "F8_E8M0": "float8_e8m0fnu", "C32": "complex32",
    "C64": "complex64", "C128": "complex128",
}

# How this process's torch takes each dtype: "native" (DLPack's own type
# code) or "bits" (same-width unsigned integers, then .view(dtype): still no
# copy). Learned on first use, per dtype; a torch that refuses both raises.
_torch_modes = {}
_torch_modes_lock = threading.Lock()


def export(handle, component, index, flags, versioned=False):
    """A capsule (owning a fresh DLPack export) of tensor `index`."""
    out = ctypes.c_void_p()
    err = Error()
    fn = lib.ttsm_model_export_dlpack if versioned else lib.ttsm_model_export_dlpack_legacy
    st = fn(handle, component, index, flags, ctypes.byref(out), ctypes.byref(err))
    if st != Status.OK:
        raise from_c(st, err)
    if versioned:
        return _dlpack.versioned_capsule(out.value)
    return _dlpack.legacy_capsule(out.value)


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("ttsm: state_dict() and to_torch() need PyTorch") from e
    return torch


def to_torch(handle, component, index, dtype, name, flags=0):
    """The tensor as a torch.Tensor sharing its memory (legacy capsules:
    every torch since 1.10 takes them, and nothing needs negotiating).
    `flags`: TTSM_DLPACK_INNER for tensors of an entry's own engine object."""
    torch = _torch()
    from_dlpack = torch.from_dlpack
    mode = _torch_modes.get(dtype)
    want = getattr(torch, TORCH_DTYPE_NAMES.get(dtype, ""), None)
    if mode in (None, "native"):
        cap = export(handle, component, index, flags)
        try:
            t = from_dlpack(cap)
        except (RuntimeError, BufferError, TypeError, ValueError) as e:
            if mode == "native":
                raise
            failure = str(e)  # not the exception: its traceback would keep the capsule
        else:
            with _torch_modes_lock:
                _torch_modes[dtype] = "native"
            return t
        finally:
            del cap  # in normal flow: an unconsumed capsule frees its export here
        if want is None:
            raise TTSUnsupportedDtypeError.from_python(
                "tensor '%s' has dtype %s, which torch %s cannot represent (%s)" %
                (name, dtype, torch.__version__, failure),
                hint="read it with numpy.from_dlpack(model.tensors(component)[name]), or its "
                     "bytes with Tensor.raw()")
    elif mode == "bits" and want is None:
        raise TTSUnsupportedDtypeError.from_python(
            "tensor '%s' has dtype %s, which torch %s cannot represent" %
            (name, dtype, torch.__version__))
    cap = export(handle, component, index, DLPACK_BITS | flags)
    try:
        t = from_dlpack(cap).view(want)
    finally:
        del cap
    with _torch_modes_lock:
        _torch_modes[dtype] = "bits"
    return t


class Tensor:
    """One tensor of a loaded model, exportable through DLPack without a
    copy: ``torch.from_dlpack(t)``, ``numpy.from_dlpack(t)``.

    Attributes: ``name``, ``component``, ``dtype`` (the ttsm dtype name:
    "F32", "BF16", "Q4_K", ...), ``shape`` and ``strides`` (in elements, as
    stored in the checkpoint), ``nbytes``, ``data_ptr`` (the address on the
    model's device), ``device`` ("cpu", "cuda:0") and ``read_only`` (what a
    versioned export says; the legacy protocol cannot say it).

    Holds a reference to its model until it is garbage collected or
    :meth:`close` is called."""

    _retain = lib.ttsm_model_retain
    _release = lib.ttsm_model_release

    def __init__(self, handle, component, component_name, index, device, read_only=True,
                 flags=0, inner=False):
        info = lib.ttsm_model_get_tensor(handle, component, index)
        if not info:
            raise IndexError("no tensor %d in component %d" % (index, component))
        t = info.contents
        self._handle = None
        self._capsules = []
        self.name = text(t.name)
        self.component = component_name
        self.dtype = text(lib.ttsm_dtype_name(t.dtype))
        self.shape = tuple(t.shape[i] for i in range(t.rank))
        self.strides = tuple(t.strides[i] for i in range(t.rank))
        self.nbytes = t.nbytes
        self.data_ptr = t.data or 0
        self.device = device
        self.read_only = read_only
        self._flags = flags
        if flags & DLPACK_BYTES:
            self.dtype, self.shape, self.strides = "U8", (self.nbytes,), (1,)
        self._component = component
        self._index = index
        if inner:  # a tensor of an entry's own engine object (Model.bind, weights)
            self._flags |= DLPACK_INNER
            self._retain = lib.ttsm_model_retain_inner
            self._release = lib.ttsm_model_release_inner
        self._retain(handle)
        self._handle = handle

    def _check_open(self):
        if self._handle is None:
            raise ValueError("ttsm: tensor '%s' is closed" % self.name)

    def __dlpack_device__(self):
        if self.device == "cpu":
            return (_dlpack.kDLCPU, 0)
        if self.device.startswith("cuda:"):
            return (_dlpack.kDLCUDA, int(self.device[5:]))
        raise BufferError("ttsm: device %s has no DLPack device type" % self.device)

    def __dlpack__(self, stream=None, *, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule of this tensor. ``max_version`` (the consumer's
        highest DLPack version) >= (1, 0) gets a versioned capsule carrying
        the read-only flag; otherwise a legacy one. ``stream`` is accepted
        and needs no action: uploads to CUDA finished before the load
        returned. No copies are made: ``copy=True`` and another
        ``dl_device`` are refused (BufferError)."""
        self._check_open()
        if copy:
            raise BufferError("ttsm: tensors are exported without a copy; copy=True is not "
                              "supported")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError("ttsm: tensor '%s' is on %s; it cannot be exported to %r" %
                              (self.name, self.device, tuple(dl_device)))
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        flags = self._flags | (0 if self.read_only else DLPACK_WRITABLE)
        cap = export(self._handle, self._component, self._index, flags, versioned)
        # Keep unused capsules until this tensor goes: a consumer that fails
        # drops its capsule while its exception unwinds, and the capsule's
        # destructor (Python code, through ctypes) is better run later, in
        # normal flow. Consumed ones are forgotten here.
        self._capsules = [c for c in self._capsules if _dlpack.unused(c)]
        self._capsules.append(cap)
        return cap

    def to_torch(self):
        """A torch.Tensor sharing this tensor's memory (see Model.state_dict)."""
        self._check_open()
        if self._flags & DLPACK_BYTES:
            from_dlpack = _torch().from_dlpack
            return from_dlpack(export(self._handle, self._component, self._index, self._flags))
        return to_torch(self._handle, self._component, self._index, self.dtype, self.name,
                        self._flags & DLPACK_INNER)

    def raw(self):
        """The same memory as a 1-D uint8 tensor of ``nbytes`` bytes (for
        dtypes DLPack has no type for: block-quantised GGUF types, F4, F6).
        For a strided view the bytes it spans, gaps included."""
        self._check_open()
        return Tensor(self._handle, self._component, self.component, self._index, self.device,
                      self.read_only, DLPACK_BYTES, inner=bool(self._flags & DLPACK_INNER))

    def close(self):
        """Drops this object's model reference (exports already taken stay valid)."""
        self._capsules = []
        h, self._handle = self._handle, None
        if h is not None:
            self._release(h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "ttsm.Tensor(%r, dtype=%s, shape=%s, device=%s)" % (self.name, self.dtype,
                                                                  list(self.shape), self.device)
