"""hub.py - pull() and remove(): a model's files from the Hugging Face Hub
into the hub cache (or a models root), and out of the cache again, through
ttsm_pull() and ttsm_remove(). docs/hub.md has the protocol and layout."""
import collections
import ctypes
import json
import os
import threading

from . import _lib
from ._lib import Error, cstr, lib
from ._lib import text as _text
from .errors import Status, TTSCancelledError, TTSInvalidArgumentError, from_c
from .manager import _Config

PullProgress = collections.namedtuple(
    "PullProgress", "repo file file_done file_total done total files_done files_total finished")
PullProgress.__doc__ = ("One progress report of a pull: the file in flight (repo id, path in the "
                        "repo, its bytes so far and in all), the bytes and files of the whole "
                        "pull, and whether this report says the file is in place.")


def pull(engine, model=None, language=None, model_type=None, revision=None, models_dir=None,
         hf_cache=None, to_models_root=None, dry_run=False, jobs=None, endpoint=None,
         token=None, progress=None, comfyui=None, **params):
    """Fetches the files the model needs that are not found locally, and
    returns the report as a dict: {"engine", "model", "target", "root",
    "dry_run", "offline", "files": [{"component", "repo", "revision",
    "commit", "path", "size", "status", "optional", "local"}], "total_bytes",
    "download_bytes", "downloaded", "present"}.

    progress: callable(PullProgress); a true result (or an exception, which
    is re-raised) cancels the pull with TTSCancelledError: files in place
    stay, a partial one is kept hidden for the next pull to resume. It is
    called from the pull's threads, one call at a time. endpoint/token:
    default HF_ENDPOINT and HF_TOKEN (or the token file); token="" sends
    none. Raises TTSModelNotFoundError (not on the Hub, or offline and
    missing), TTSModelIOError (network, gated repo, refused token, disk,
    hash or size mismatch), TTSModelFormatError (the server broke the
    protocol), TTSInvalidArgumentError."""
    c = _Config(engine, model, "cpu", language, None, None, model_type, params)
    o = lib.ttsm_pull_options_default()
    keep = []

    def s(v, what):
        b = cstr(v, what)
        keep.append(b)
        return b

    if models_dir is not None and isinstance(models_dir, (list, tuple)):
        models_dir = ":".join(os.fspath(d) for d in models_dir)
    o.models_dirs = s(models_dir, "models_dir")
    if comfyui is not None and isinstance(comfyui, (list, tuple)):
        comfyui = ":".join(os.fspath(d) for d in comfyui)
    o.comfyui_dirs = s(comfyui, "comfyui")
    o.hf_cache = s(hf_cache, "hf_cache")
    o.to_models_root = s(to_models_root, "to_models_root")
    o.revision = s(revision, "revision")
    o.endpoint = s(endpoint, "endpoint")
    o.token = s(token, "token")
    o.dry_run = 1 if dry_run else 0
    if jobs is not None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= _lib.PULL_MAX_JOBS:
            raise TTSInvalidArgumentError.from_python(
                "jobs must be an int in 1..%d" % _lib.PULL_MAX_JOBS)
        o.jobs = jobs
    failure = []
    lock = threading.Lock()
    if progress is not None:
        if not callable(progress):
            raise TTSInvalidArgumentError.from_python("progress must be callable")

        def cb(user, p):
            r = p.contents
            try:
                return 1 if progress(PullProgress(
                    _text(r.repo), _text(r.file), r.file_done, r.file_total, r.done, r.total,
                    r.files_done, r.files_total, bool(r.finished))) else 0
            except BaseException as e:  # re-raised by pull() as the cancel's cause
                with lock:
                    failure.append(e)
                return 1
        o.progress = _lib.PULL_PROGRESS_FN(cb)
        keep.append(o.progress)
    out = ctypes.c_void_p()
    err = Error()
    st = lib.ttsm_pull(ctypes.byref(o), ctypes.byref(c.cfg), ctypes.byref(out), ctypes.byref(err))
    report = None
    if out.value:
        try:
            report = json.loads(ctypes.string_at(out.value).decode("utf-8"))
        finally:
            lib.ttsm_free(out)
    if st != Status.OK:
        e = from_c(st, err)
        if isinstance(e, TTSCancelledError) and failure:
            raise e from failure[0]
        raise e
    return report


def remove(engine, model=None, language=None, model_type=None, hf_cache=None, dry_run=False,
           **params):
    """Removes the model from the hub cache: its snapshot entries, and the
    blobs no other entry references. Returns the report: {"engine", "model",
    "hub_cache", "dry_run", "links", "blobs": [{"path", "bytes"}],
    "freed_bytes", "repos_removed"}."""
    c = _Config(engine, model, "cpu", language, None, None, model_type, params)
    out = ctypes.c_void_p()
    err = Error()
    st = lib.ttsm_remove(ctypes.byref(c.cfg), cstr(hf_cache, "hf_cache"), 1 if dry_run else 0,
                         ctypes.byref(out), ctypes.byref(err))
    if st != Status.OK:
        raise from_c(st, err)
    try:
        return json.loads(ctypes.string_at(out.value).decode("utf-8"))
    finally:
        lib.ttsm_free(out)
