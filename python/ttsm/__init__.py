"""ttsm - Python binding of libttsm, the model-loading core of a multi-engine
text-to-speech system: one cache with device budgets, strict checkpoint
readers, tensors handed to PyTorch without a copy (DLPack), and Python
engines whose objects the cache holds, evicts and charges.

    import ttsm

    def build(config, weights, ctx):        # once per load, weights already loaded
        net = MyNet().to("meta")            # no memory of its own
        weights.bind(net)                   # zero-copy: the module uses ttsm's tensors
        return net

    ttsm.register_engine("chatterbox", build)
    with ttsm.Manager(budgets={"cpu": "8GiB"}) as mgr:
        with mgr.load("chatterbox", language="en") as m:
            m.engine(...)                   # the cached module, shared by every holder

Pure Python (ctypes): libttsm is found through $TTSM_LIBRARY, the copy a
wheel carries, the installed library, or a build tree next to this package.
docs/python.md has the API, the lifetime rules and the DLPack decisions.
"""
from ._lib import lib as _c, path as library_path
from .errors import (Attempt, Status, TTSCancelledError, TTSDeviceError, TTSEngineError,
                     TTSError, TTSInvalidArgumentError, TTSModelFormatError, TTSModelIOError,
                     TTSModelLoadingError, TTSModelNotFoundError, TTSOutOfMemoryError,
                     TTSUnsupportedDtypeError)
from .model import BindResult, Component, Fallback, LoadAttempt, Model
from .manager import (Device, DeviceStats, Entry, Installed, Manager, Resolution,
                      ResolvedComponent, Stats, cache_key, cache_key_canonical, cuda_status,
                      devices, engines, list_installed, parse_duration, parse_size)
from .registry import (BuildContext, EngineInfo, LoadConfig, ModelInfo, ParamInfo, engine_info,
                      register_engine)
from .fallback import (FallbackChain, FallbackWarning, if_device_error, if_load_error,
                       if_missing_or_bad)
from .tensor import Tensor
from .hub import PullProgress, pull, remove

__version__ = "0.1.0"


def library_version():
    """The version of the libttsm in use ("MAJOR.MINOR.PATCH")."""
    return _c.ttsm_version().decode()


__all__ = [
    "Attempt", "BindResult", "BuildContext", "Component", "Device", "DeviceStats", "EngineInfo",
    "Entry", "Fallback", "FallbackChain", "FallbackWarning", "Installed", "LoadAttempt",
    "LoadConfig", "Manager", "Model",
    "ModelInfo", "ParamInfo", "PullProgress", "Resolution", "ResolvedComponent", "Stats", "Status", "Tensor",
    "TTSCancelledError", "TTSDeviceError", "TTSEngineError", "TTSError",
    "TTSInvalidArgumentError", "TTSModelFormatError", "TTSModelIOError", "TTSModelLoadingError",
    "TTSModelNotFoundError", "TTSOutOfMemoryError", "TTSUnsupportedDtypeError", "cache_key",
    "cache_key_canonical", "cuda_status", "devices", "engine_info", "engines",
    "if_device_error", "if_load_error", "if_missing_or_bad", "library_path", "library_version",
    "list_installed", "parse_duration", "parse_size", "pull", "register_engine", "remove",
]
