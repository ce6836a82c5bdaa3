"""ttsm - Python binding of libttsm, the model-loading core of a multi-engine
text-to-speech system: one cache with device budgets, strict checkpoint
readers, and tensors handed to PyTorch without a copy (DLPack).

    import ttsm
    with ttsm.Manager(budgets={"cpu": "8GiB"}) as mgr:
        with mgr.load("file", model_path="model.safetensors", device="cpu") as m:
            module.load_state_dict(m.state_dict(), strict=True)

Pure Python (ctypes): libttsm is found through $TTSM_LIBRARY, the installed
library, or a build tree next to this package. docs/python.md has the API,
the lifetime rules and the DLPack decisions.
"""
from ._lib import lib as _c, path as library_path
from .errors import (Attempt, Status, TTSCancelledError, TTSDeviceError, TTSEngineError,
                     TTSError, TTSInvalidArgumentError, TTSModelFormatError, TTSModelIOError,
                     TTSModelLoadingError, TTSModelNotFoundError, TTSOutOfMemoryError,
                     TTSUnsupportedDtypeError)
from .manager import (Component, Device, DeviceStats, Entry, Fallback, LoadAttempt, Manager,
                      Model, Stats, cache_key, cache_key_canonical, cuda_status, devices,
                      engines, parse_duration, parse_size)
from .tensor import Tensor

__version__ = "0.1.0"


def library_version():
    """The version of the libttsm in use ("MAJOR.MINOR.PATCH")."""
    return _c.ttsm_version().decode()


__all__ = [
    "Attempt", "Component", "Device", "DeviceStats", "Entry", "Fallback", "LoadAttempt",
    "Manager", "Model", "Stats",
    "Status", "Tensor", "TTSCancelledError", "TTSDeviceError", "TTSEngineError", "TTSError",
    "TTSInvalidArgumentError", "TTSModelFormatError", "TTSModelIOError", "TTSModelLoadingError",
    "TTSModelNotFoundError", "TTSOutOfMemoryError", "TTSUnsupportedDtypeError", "cache_key",
    "cache_key_canonical", "cuda_status", "devices", "engines", "library_path",
    "library_version", "parse_duration", "parse_size",
]
