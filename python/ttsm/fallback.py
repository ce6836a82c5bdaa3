"""fallback.py - FallbackChain: the generic fallback chain (DESIGN §8) for
Python code, run by the library's own ttsm_fallback_run() - the function the
manager runs the chains manifests declare through - so attempts are
recorded, and the final error built, the same way. Loaders are Python
callables returning anything (a Model, a module); conditions get the
exception of the last failure, not its text."""
import ctypes
import warnings

from . import _lib
from ._lib import Error, lib
from .registry import fill_error
from .errors import (Attempt, Status, TTSDeviceError, TTSError, TTSModelFormatError,
                     TTSModelLoadingError, TTSModelNotFoundError, from_c)


class FallbackWarning(UserWarning):
    """A fallback step loaded instead of the primary (the warning names the
    failures before it)."""


def if_missing_or_bad(exc):
    """A missing or invalid file (TTSModelNotFoundError, TTSModelFormatError)."""
    return isinstance(exc, (TTSModelNotFoundError, TTSModelFormatError))


def if_load_error(exc):
    """Any model-loading failure of the library (TTSModelLoadingError)."""
    return isinstance(exc, TTSModelLoadingError)


def if_device_error(exc):
    """A device failing or full: TTSDeviceError (TTSOutOfMemoryError is one),
    MemoryError, or torch's out-of-memory errors."""
    return (isinstance(exc, (TTSDeviceError, MemoryError)) or
            "OutOfMemory" in type(exc).__name__)


def _code_of(exc):
    if isinstance(exc, TTSError):
        return int(exc.code)
    if isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__:
        return int(Status.ERR_OUT_OF_MEMORY)
    if isinstance(exc, FileNotFoundError):
        return int(Status.ERR_NOT_FOUND)
    if isinstance(exc, OSError):
        return int(Status.ERR_IO)
    return int(Status.ERR_LOAD)


class FallbackChain:
    """``FallbackChain(primary).add(loader, condition).load()``: runs
    `primary()`, then each later loader whose condition accepts the last
    failure, until one returns. `condition`: a callable taking the
    exception, an exception class (or tuple), or None (any Exception).
    Returns what the successful loader returned, with a
    :class:`FallbackWarning` when it was not the primary; ``attempts`` then
    lists the failures before it. When every step fails, raises the
    primary's error class with every attempt in ``e.attempts``, chained from
    the primary's exception (KeyboardInterrupt and the like propagate as
    they are)."""

    def __init__(self, primary, label=None):
        self._steps = []
        self.attempts = []
        self.add(primary, None, label)

    def add(self, loader, condition=None, label=None):
        if not callable(loader):
            raise TypeError("a fallback step needs a callable loader")
        if condition is not None and not callable(condition) and not (
                isinstance(condition, tuple) or isinstance(condition, type)):
            raise TypeError("condition must be callable, an exception class or None")
        if isinstance(condition, (type, tuple)):
            classes = condition
            condition = lambda e: isinstance(e, classes)  # noqa: E731
        name = label or getattr(loader, "__name__", None) or "step %d" % (len(self._steps) + 1)
        if name == "<lambda>":
            name = "step %d" % (len(self._steps) + 1)
        self._steps.append((loader, condition, name))
        return self

    def load(self):
        state = {"result": None, "index": None, "last": None, "primary": None, "abort": None}
        attempts = []
        keep = []
        steps = (_lib.FallbackStep * len(self._steps))()
        for i, (loader, condition, label) in enumerate(self._steps):
            lb = label.encode("utf-8", "replace")
            keep.append(lb)
            steps[i].label = lb
            steps[i].load = _lib.LOADER_FN(self._loader(i, loader, label, state, attempts))
            keep.append(steps[i].load)
            if i:
                steps[i].when = _lib.CONDITION_FN(self._condition(condition, state))
                keep.append(steps[i].when)
        out = ctypes.c_void_p()
        err = Error()
        st = lib.ttsm_fallback_run(steps, len(self._steps), ctypes.byref(out), ctypes.byref(err))
        self.attempts = attempts
        if state["abort"] is not None:
            raise state["abort"]
        if st == Status.OK:
            if state["index"]:
                warnings.warn(FallbackWarning(
                    "%s loaded instead: %s" % (self._steps[state["index"]][2],
                                               "; ".join(a.message for a in attempts))),
                    stacklevel=2)
            return state["result"]
        e = from_c(st, err)
        raise e from state["primary"]

    @staticmethod
    def _loader(i, loader, label, state, attempts):
        def run(user, out, err):
            try:
                result = loader()
            except BaseException as e:
                state["last"] = e
                if i == 0:
                    state["primary"] = e
                if not isinstance(e, Exception):
                    state["abort"] = e
                code = _code_of(e)
                text = e.message if isinstance(e, TTSError) else "%s: %s" % (type(e).__name__, e)
                text = fill_error(err, code, text)
                attempts.append(Attempt(Status(code), "%s: %s" % (label, text)))
                return code
            state["result"], state["index"] = result, i
            out[0] = 1  # a token: what the loader made stays on this side
            return 0
        return run

    @staticmethod
    def _condition(condition, state):
        def when(user, failed, err):
            if state["abort"] is not None:
                return 0
            try:
                if condition is None:
                    return 1 if isinstance(state["last"], Exception) else 0
                return 1 if condition(state["last"]) else 0
            except BaseException as e:  # a broken condition stops the chain, and is raised
                state["abort"] = e
                return 0
        return when
