"""_lib.py - finds and opens libttsm, and declares the C structures and
function signatures the binding uses (a mirror of include/ttsm.h: a field
out of place here would read garbage, so the tests check every struct
against values the library reports)."""
import ctypes
import ctypes.util
import glob
import os

from .errors import TTSInvalidArgumentError

# ---- finding the library ------------------------------------------------------


def _candidates():
    env = os.environ.get("TTSM_LIBRARY")
    if env:
        # An explicit choice is the only one: a wrong path must not fall
        # back silently to some other copy of the library.
        return [env], True
    found = []
    here = os.path.dirname(os.path.abspath(__file__))
    # The copy a wheel built from the repository carries (libttsm.so next
    # to this file): the one built with this binding, so it comes first.
    packaged = os.path.join(here, "libttsm.so")
    if os.path.exists(packaged):
        found.append(packaged)
    name = ctypes.util.find_library("ttsm")
    if name:
        found.append(name)
    # The build tree of a source checkout: python/ttsm/ -> <repo>/build*/
    repo = os.path.dirname(os.path.dirname(here))
    for pattern in ("build/libttsm.so", "build*/libttsm.so"):
        for p in sorted(glob.glob(os.path.join(repo, pattern))):
            if p not in found:
                found.append(p)
    return found, False


# ---- structures (include/ttsm.h) ---------------------------------------------

ERROR_MESSAGE_MAX = 512
ERROR_HINT_MAX = 256
ERROR_ATTEMPT_MAX = 256
ERROR_MAX_ATTEMPTS = 8
KEY_HEX_SIZE = 33
CONFIG_NAME_MAX = 256
DEVICE_NAME_MAX = 64
MANAGER_MAX_DEVICES = 32
DEFAULT_DEVICE_RESERVE = 512 << 20

IO_MMAP, IO_READ = 0, 1

DLPACK_BITS, DLPACK_BYTES, DLPACK_WRITABLE, DLPACK_INNER = 1, 2, 4, 8


class ErrorAttempt(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * ERROR_ATTEMPT_MAX)]


class Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * ERROR_MESSAGE_MAX),
                ("hint", ctypes.c_char * ERROR_HINT_MAX), ("n_attempts", ctypes.c_size_t),
                ("n_attempts_dropped", ctypes.c_size_t),
                ("attempts", ErrorAttempt * ERROR_MAX_ATTEMPTS)]


class Param(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("value", ctypes.c_char_p)]


class LoadConfig(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("engine", ctypes.c_char_p),
                ("model_type", ctypes.c_char_p), ("model_name", ctypes.c_char_p),
                ("device", ctypes.c_char_p), ("language", ctypes.c_char_p),
                ("model_path", ctypes.c_char_p), ("repo_id", ctypes.c_char_p),
                ("params", ctypes.POINTER(Param)), ("n_params", ctypes.c_size_t)]


class DeviceBudget(ctypes.Structure):
    _fields_ = [("device", ctypes.c_char_p), ("bytes", ctypes.c_uint64)]


class EntryInfo(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char * KEY_HEX_SIZE), ("engine", ctypes.c_char * CONFIG_NAME_MAX),
                ("model", ctypes.c_char * 512), ("device", ctypes.c_char * DEVICE_NAME_MAX),
                ("bytes", ctypes.c_uint64), ("refs", ctypes.c_size_t), ("pinned", ctypes.c_int),
                ("loading", ctypes.c_int), ("idle_seconds", ctypes.c_double)]


LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64,
                               ctypes.c_uint64)
CLOCK_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)
EVICT_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(EntryInfo), ctypes.c_char_p)


class ManagerOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("budgets", ctypes.POINTER(DeviceBudget)),
                ("n_budgets", ctypes.c_size_t), ("device_reserve_bytes", ctypes.c_uint64),
                ("keep_alive_ms", ctypes.c_uint64), ("io_mode", ctypes.c_int),
                ("allow_cpu_fallback", ctypes.c_int), ("log", LOG_FN),
                ("log_user", ctypes.c_void_p), ("progress", PROGRESS_FN),
                ("progress_user", ctypes.c_void_p), ("clock", CLOCK_FN),
                ("clock_user", ctypes.c_void_p), ("models_dirs", ctypes.c_char_p),
                ("hf_cache", ctypes.c_char_p), ("engines_dir", ctypes.c_char_p),
                ("comfyui_dirs", ctypes.c_char_p), ("keep_alive_timer", ctypes.c_int),
                ("on_evict", EVICT_FN), ("on_evict_user", ctypes.c_void_p),
                ("verify_on_load", ctypes.c_int),
                ("download", ctypes.c_int), ("download_jobs", ctypes.c_uint),
                ("prefetch", ctypes.c_int)]


DOWNLOAD_NEVER, DOWNLOAD_MISSING = 0, 1
PULL_DEFAULT_JOBS, PULL_MAX_JOBS = 4, 16


class PullProgress(ctypes.Structure):
    _fields_ = [("repo", ctypes.c_char_p), ("file", ctypes.c_char_p),
                ("file_done", ctypes.c_uint64), ("file_total", ctypes.c_uint64),
                ("done", ctypes.c_uint64), ("total", ctypes.c_uint64),
                ("files_done", ctypes.c_size_t), ("files_total", ctypes.c_size_t),
                ("finished", ctypes.c_int)]


PULL_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(PullProgress))


class PullOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("models_dirs", ctypes.c_char_p),
                ("comfyui_dirs", ctypes.c_char_p), ("hf_cache", ctypes.c_char_p),
                ("to_models_root", ctypes.c_char_p),
                ("revision", ctypes.c_char_p), ("endpoint", ctypes.c_char_p),
                ("token", ctypes.c_char_p), ("dry_run", ctypes.c_int), ("jobs", ctypes.c_uint),
                ("retries", ctypes.c_uint), ("connect_timeout_ms", ctypes.c_uint64),
                ("stall_timeout_ms", ctypes.c_uint64), ("progress", PULL_PROGRESS_FN),
                ("progress_user", ctypes.c_void_p), ("log", LOG_FN),
                ("log_user", ctypes.c_void_p)]


class LoadStep(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("model", ctypes.c_char * CONFIG_NAME_MAX),
                ("device", ctypes.c_char * DEVICE_NAME_MAX),
                ("message", ctypes.c_char * ERROR_ATTEMPT_MAX)]


class LoadReport(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("hit", ctypes.c_int), ("shared", ctypes.c_int),
                ("fell_back", ctypes.c_int), ("asked", ctypes.c_char * CONFIG_NAME_MAX),
                ("asked_device", ctypes.c_char * DEVICE_NAME_MAX),
                ("loaded", ctypes.c_char * CONFIG_NAME_MAX),
                ("loaded_device", ctypes.c_char * DEVICE_NAME_MAX),
                ("why", ctypes.c_char * ERROR_MESSAGE_MAX), ("n_steps", ctypes.c_size_t),
                ("n_steps_dropped", ctypes.c_size_t),
                ("steps", LoadStep * ERROR_MAX_ATTEMPTS)]


# Engines with a build hook (ttsm_engine_caps). The callbacks are called by
# the library, on the loading thread, with no ttsm lock held.
RECOVER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(LoadConfig),
                              ctypes.POINTER(Error))
BUILD_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(LoadConfig), ctypes.c_void_p,
                            ctypes.c_void_p, ctypes.POINTER(Error))
DESTROY_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class EngineCaps(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("can_corrupt", ctypes.c_int),
                ("single_instance", ctypes.c_int), ("devices", ctypes.c_char_p),
                ("recover", RECOVER_FN), ("user", ctypes.c_void_p),
                ("synthesize", ctypes.c_void_p), ("build", BUILD_FN),
                ("extra_bytes", ctypes.c_uint64), ("extra_ratio", ctypes.c_double)]


# Fallback chains (ttsm_fallback_run).
LOADER_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                             ctypes.POINTER(Error))
CONDITION_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                ctypes.POINTER(Error))


class FallbackStep(ctypes.Structure):
    _fields_ = [("label", ctypes.c_char_p), ("load", LOADER_FN), ("user", ctypes.c_void_p),
                ("when", CONDITION_FN), ("when_user", ctypes.c_void_p)]


class DeviceStats(ctypes.Structure):
    _fields_ = [("device", ctypes.c_char * DEVICE_NAME_MAX), ("budget", ctypes.c_uint64),
                ("in_use", ctypes.c_uint64), ("reserved", ctypes.c_uint64),
                ("peak", ctypes.c_uint64), ("entries", ctypes.c_size_t)]


class ManagerStats(ctypes.Structure):
    _fields_ = [("hits", ctypes.c_uint64), ("misses", ctypes.c_uint64), ("loads", ctypes.c_uint64),
                ("evictions", ctypes.c_uint64), ("failures", ctypes.c_uint64),
                ("unloads", ctypes.c_uint64), ("invalidations", ctypes.c_uint64),
                ("checkpoint_opens", ctypes.c_uint64), ("entries", ctypes.c_size_t),
                ("orphans", ctypes.c_size_t), ("n_devices", ctypes.c_size_t),
                ("devices", DeviceStats * MANAGER_MAX_DEVICES)]


class ModelTensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_uint32),
                ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("data", ctypes.c_void_p),
                ("nbytes", ctypes.c_uint64)]


class MetadataEntry(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("type", ctypes.c_char_p), ("json", ctypes.c_char_p)]


class SynthOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("language", ctypes.c_char_p),
                ("voice", ctypes.c_char_p), ("rate", ctypes.c_int), ("pitch", ctypes.c_int)]


class Audio(ctypes.Structure):
    _fields_ = [("samples", ctypes.POINTER(ctypes.c_int16)), ("n_samples", ctypes.c_size_t),
                ("sample_rate", ctypes.c_uint32)]


class DeviceInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * DEVICE_NAME_MAX), ("description", ctypes.c_char * 128),
                ("total_bytes", ctypes.c_uint64), ("free_bytes", ctypes.c_uint64)]


# ---- functions ----------------------------------------------------------------

_p = ctypes.c_void_p
_s = ctypes.c_char_p
_z = ctypes.c_size_t
_i = ctypes.c_int
_E = ctypes.POINTER(Error)

_SIGNATURES = {
    "ttsm_version": (_s, []),
    "ttsm_status_name": (_s, [_i]),
    "ttsm_status_is": (_i, [_i, _i]),
    "ttsm_dtype_name": (_s, [_i]),
    "ttsm_format_name": (_s, [_i]),
    "ttsm_free": (None, [_p]),
    "ttsm_cache_key": (_i, [ctypes.POINTER(LoadConfig), ctypes.c_char * KEY_HEX_SIZE, _E]),
    "ttsm_cache_key_canonical": (_i, [ctypes.POINTER(LoadConfig), ctypes.POINTER(_p),
                                      ctypes.POINTER(_z), _E]),
    "ttsm_device_count": (_z, []),
    "ttsm_device_get": (_i, [_z, ctypes.POINTER(DeviceInfo), _E]),
    "ttsm_cuda_status": (_s, []),
    "ttsm_engine_count": (_z, []),
    "ttsm_engine_get": (_p, [_z]),
    "ttsm_engine_name": (_s, [_p]),
    "ttsm_engine_runtime": (_s, [_p]),
    "ttsm_engine_find": (_p, [_s]),
    "ttsm_engine_source": (_s, [_p]),
    "ttsm_engine_manifest": (_s, [_p]),
    "ttsm_engine_description": (_s, [_p]),
    "ttsm_engine_recovery": (_s, [_p]),
    "ttsm_engine_devices": (_s, [_p]),
    "ttsm_engine_default_model": (_s, [_p]),
    "ttsm_engine_has": (_i, [_p, _i]),
    "ttsm_engine_alias_count": (_z, [_p]),
    "ttsm_engine_alias": (_s, [_p, _z]),
    "ttsm_engine_language_count": (_z, [_p]),
    "ttsm_engine_language": (_s, [_p, _z]),
    "ttsm_engine_model_type_count": (_z, [_p]),
    "ttsm_engine_model_type": (_s, [_p, _z]),
    "ttsm_engine_model_count": (_z, [_p]),
    "ttsm_engine_model_name": (_s, [_p, _z]),
    "ttsm_engine_model_language": (_s, [_p, _z]),
    "ttsm_engines_add_manifest": (_i, [_s, _z, _s, _E]),
    "ttsm_engine_caps_default": (EngineCaps, []),
    "ttsm_register_engine": (_i, [_s, _p, ctypes.POINTER(EngineCaps), _E]),
    "ttsm_model_set_engine_data": (None, [_p, _p, DESTROY_FN]),
    "ttsm_model_engine_data": (_p, [_p]),
    "ttsm_model_dtype": (_i, [_p]),
    "ttsm_model_retain_inner": (None, [_p]),
    "ttsm_model_release_inner": (None, [_p]),
    "ttsm_factory_ctx_device": (_s, [_p]),
    "ttsm_factory_ctx_user": (_p, [_p]),
    "ttsm_factory_ctx_recovering": (_i, [_p]),
    "ttsm_factory_ctx_estimate": (ctypes.c_uint64, [_p]),
    "ttsm_factory_ctx_charge": (_i, [_p, ctypes.c_uint64, _E]),
    "ttsm_fallback_run": (_i, [ctypes.POINTER(FallbackStep), _z, ctypes.POINTER(_p), _E]),
    "ttsm_manager_free": (_i, [_p, _s, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64), _E]),
    "ttsm_resolve_with": (_i, [ctypes.POINTER(LoadConfig), ctypes.POINTER(ManagerOptions),
                               ctypes.POINTER(_p), _E]),
    "ttsm_manager_create": (_i, [ctypes.POINTER(ManagerOptions), ctypes.POINTER(_p), _E]),
    "ttsm_manager_destroy": (None, [_p]),
    "ttsm_load": (_i, [_p, ctypes.POINTER(LoadConfig), ctypes.POINTER(_p), _E]),
    "ttsm_load_report_init": (None, [ctypes.POINTER(LoadReport)]),
    "ttsm_load_with_report": (_i, [_p, ctypes.POINTER(LoadConfig), ctypes.POINTER(_p),
                                   ctypes.POINTER(LoadReport), _E]),
    "ttsm_model_voices": (_i, [_p, ctypes.POINTER(_p), _E]),
    "ttsm_model_retain": (None, [_p]),
    "ttsm_model_prefetch": (_i, [_p, _E]),
    "ttsm_model_prefetch_wait": (ctypes.c_uint64, [_p]),
    "ttsm_model_release": (None, [_p]),
    "ttsm_pin": (_i, [_p, _s, _E]),
    "ttsm_unpin": (_i, [_p, _s, _E]),
    "ttsm_unload": (_i, [_p, _s, _E]),
    "ttsm_invalidate": (_i, [_p, _s, _E]),
    "ttsm_manager_sweep": (_z, [_p]),
    "ttsm_manager_list": (_i, [_p, ctypes.POINTER(ctypes.POINTER(EntryInfo)),
                               ctypes.POINTER(_z), _E]),
    "ttsm_manager_get_stats": (None, [_p, ctypes.POINTER(ManagerStats)]),
    "ttsm_model_key": (_s, [_p]),
    "ttsm_model_engine": (_s, [_p]),
    "ttsm_model_device": (_s, [_p]),
    "ttsm_model_name": (_s, [_p]),
    "ttsm_model_bytes": (ctypes.c_uint64, [_p]),
    "ttsm_model_component_count": (_z, [_p]),
    "ttsm_model_component_name": (_s, [_p, _z]),
    "ttsm_model_component_path": (_s, [_p, _z]),
    "ttsm_model_component_kind": (_s, [_p, _z]),
    "ttsm_model_tensor_count": (_z, [_p, _z]),
    "ttsm_model_get_tensor": (ctypes.POINTER(ModelTensor), [_p, _z, _z]),
    "ttsm_model_component_checkpoint": (_p, [_p, _z]),
    "ttsm_model_export_dlpack": (_i, [_p, _z, _z, ctypes.c_uint, ctypes.POINTER(_p), _E]),
    "ttsm_model_export_dlpack_legacy": (_i, [_p, _z, _z, ctypes.c_uint, ctypes.POINTER(_p), _E]),
    "ttsm_checkpoint_format": (_i, [_p]),
    "ttsm_checkpoint_metadata_count": (_z, [_p]),
    "ttsm_checkpoint_metadata": (ctypes.POINTER(MetadataEntry), [_p, _z]),
    "ttsm_synthesize": (_i, [_p, _s, ctypes.POINTER(SynthOptions), ctypes.POINTER(Audio), _E]),
    "ttsm_audio_free": (None, [ctypes.POINTER(Audio)]),
    "ttsm_pull_options_default": (PullOptions, []),
    "ttsm_pull": (_i, [ctypes.POINTER(PullOptions), ctypes.POINTER(LoadConfig),
                       ctypes.POINTER(_p), _E]),
    "ttsm_remove": (_i, [ctypes.POINTER(LoadConfig), _s, _i, ctypes.POINTER(_p), _E]),
}


def _open():
    paths, explicit = _candidates()
    errors = []
    for p in paths:
        try:
            handle = ctypes.CDLL(p)
        except OSError as e:
            errors.append("%s: %s" % (p, e))
            continue
        missing = [n for n in _SIGNATURES if not hasattr(handle, n)]
        if not missing:
            return handle, p
        # A stale build next to a newer one: skip it (unless chosen explicitly).
        errors.append("%s: lacks %s (older than this binding)" % (p, ", ".join(missing[:3])))
        if explicit:
            break
    if explicit:
        raise ImportError("ttsm: cannot use TTSM_LIBRARY=%s: %s" % (paths[0], errors[0]))
    raise ImportError(
        "ttsm: no usable libttsm (tried the installed library via "
        "ctypes.util.find_library('ttsm') and the build tree%s). Build it with cmake and "
        "set TTSM_LIBRARY=/path/to/libttsm.so, or install it." %
        ("; " + "; ".join(errors) if errors else ""))


lib, path = _open()
for _name, (_res, _args) in _SIGNATURES.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def text(b):
    """C string -> str (None stays None); invalid UTF-8 is shown, not fatal."""
    return None if b is None else b.decode("utf-8", "replace")


def cstr(s, what):
    """str/PathLike/None -> bytes for a char * argument."""
    if s is None:
        return None
    if isinstance(s, os.PathLike):
        s = os.fspath(s)
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TTSInvalidArgumentError.from_python(
            "%s must be a string, not %s" % (what, type(s).__name__))
    if "\0" in s:
        raise TTSInvalidArgumentError.from_python("%s contains a NUL character" % what)
    return s.encode("utf-8")
