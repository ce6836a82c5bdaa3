"""_dlpack.py - DLPack capsules from pure Python: the DLPack 1.1 structs
(mirrors of include/dlpack.h), PyCapsule creation through ctypes.pythonapi,
and the capsule destructors that free a managed tensor nobody consumed.

Protocol facts (the Python array API's DLPack page, and what PyTorch and
NumPy do): a capsule is named "dltensor" (legacy DLManagedTensor) or
"dltensor_versioned" (DLManagedTensorVersioned); the consumer that takes the
tensor renames it "used_dltensor" / "used_dltensor_versioned" and from then
on owns it (calls its deleter). So the capsule's destructor calls the deleter
only while the capsule still has its unused name.
"""
import ctypes

LEGACY_NAME = b"dltensor"
VERSIONED_NAME = b"dltensor_versioned"

kDLCPU, kDLCUDA = 1, 2
FLAG_READ_ONLY = 1


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", DELETER)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", ctypes.c_void_p),
                ("deleter", DELETER), ("flags", ctypes.c_uint64), ("dl_tensor", DLTensor)]


# Private function objects (PYFUNCTYPE prototypes: called with the GIL
# held), not ctypes.pythonapi's shared ones, whose argtypes any other module
# may change. The capsule is passed as a raw address, never as py_object: a
# destructor runs on an object whose reference count is already zero, and
# ctypes must not take (and later drop) a reference to it.
_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_IsValid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi))
_GetPointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi))
_New = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, _DESTRUCTOR)(
    ("PyCapsule_New", ctypes.pythonapi))
_IncRef = ctypes.PYFUNCTYPE(None, ctypes.py_object)(("Py_IncRef", ctypes.pythonapi))


def _make_destructor(name, struct):
    # Everything the destructor touches is bound now (default arguments), so
    # it still works while the interpreter tears module globals down.
    def destroy(capsule, _valid=_IsValid, _get=_GetPointer, _name=name, _struct=struct):
        if _valid(capsule, _name):
            p = _get(capsule, _name)
            _struct.from_address(p).deleter(p)
    fn = _DESTRUCTOR(destroy)
    # Capsules may outlive this module (in a consumer's hands at exit): the
    # callback's code must never be freed, so it is given a reference that
    # is never dropped.
    _IncRef(fn)
    return fn


_legacy_destructor = _make_destructor(LEGACY_NAME, DLManagedTensor)
_versioned_destructor = _make_destructor(VERSIONED_NAME, DLManagedTensorVersioned)


def legacy_capsule(managed):
    """A "dltensor" capsule owning the DLManagedTensor at address `managed`."""
    try:
        return _New(managed, LEGACY_NAME, _legacy_destructor)
    except BaseException:
        DLManagedTensor.from_address(managed).deleter(managed)
        raise


def versioned_capsule(managed):
    """A "dltensor_versioned" capsule owning the DLManagedTensorVersioned at `managed`."""
    try:
        return _New(managed, VERSIONED_NAME, _versioned_destructor)
    except BaseException:
        DLManagedTensorVersioned.from_address(managed).deleter(managed)
        raise


def unused(capsule):
    """True while nobody has taken the tensor out of `capsule`."""
    p = id(capsule)  # CPython: the object's address, as ctypes.pythonapi needs
    return bool(_IsValid(p, LEGACY_NAME) or
                _IsValid(p, VERSIONED_NAME))


def tensor_of(capsule):
    """The DLTensor inside an unused capsule (for checks and tests)."""
    p = id(capsule)
    if _IsValid(p, LEGACY_NAME):
        return DLManagedTensor.from_address(_GetPointer(p, LEGACY_NAME)).dl_tensor
    if _IsValid(p, VERSIONED_NAME):
        m = DLManagedTensorVersioned.from_address(_GetPointer(p, VERSIONED_NAME))
        return m.dl_tensor
    raise ValueError("not an unused DLPack capsule")
