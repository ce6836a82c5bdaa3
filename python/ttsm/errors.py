"""errors.py - the exception classes, one per libttsm status code, in the
tree the C library's ttsm_status_is() answers (DESIGN section 3): every load
failure is a TTSModelLoadingError; out of memory is also a device error;
invalid arguments and cancellation are not load failures."""
import collections
import enum


class Status(enum.IntEnum):
    """ttsm_status: the numbers never change."""
    OK = 0
    ERR_LOAD = 1
    ERR_NOT_FOUND = 2
    ERR_DEVICE = 3
    ERR_OUT_OF_MEMORY = 4
    ERR_FORMAT = 5
    ERR_IO = 6
    ERR_ENGINE = 7
    ERR_INVALID_ARGUMENT = 8
    ERR_CANCELLED = 9


#: One step of a fallback chain: its status code and the message it failed with.
Attempt = collections.namedtuple("Attempt", "code message")


class TTSError(Exception):
    """Base of every error libttsm reports.

    Attributes: ``code`` (a :class:`Status`), ``message`` (the library's
    one-line message: what failed and where), ``hint`` (what to do, or ""),
    ``attempts`` (the fallback steps tried, each an :class:`Attempt`) and
    ``attempts_dropped`` (steps that did not fit the error record)."""

    def __init__(self, message, code=None, hint="", attempts=(), attempts_dropped=0):
        self.code = Status(code) if code is not None else self._default_code
        self.message = message
        self.hint = hint or ""
        self.attempts = list(attempts)
        self.attempts_dropped = attempts_dropped
        super().__init__(message)

    _default_code = Status.ERR_LOAD

    def __str__(self):
        s = self.message
        if self.hint:
            s += " (hint: %s)" % self.hint
        for i, a in enumerate(self.attempts, 1):
            s += "\n  attempt %d: [%s] %s" % (i, _name(a.code), a.message)
        if self.attempts_dropped:
            s += "\n  (%d more attempts not recorded)" % self.attempts_dropped
        return s

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, int(self.code), self.hint,
                           [tuple(a) for a in self.attempts], self.attempts_dropped))

    @classmethod
    def from_python(cls, message, hint=""):
        """An error found by the binding itself, before calling the library."""
        return cls(message, cls._default_code, hint)


def _rebuild(cls, message, code, hint, attempts, dropped):
    return cls(message, code, hint, [Attempt(_status(c), m) for c, m in attempts], dropped)


def _status(code):
    try:
        return Status(code)
    except ValueError:
        return code


def _name(code):
    return "TTSM_" + code.name if isinstance(code, Status) else "TTSM_STATUS_%d" % code


class TTSModelLoadingError(TTSError):
    """A model could not be loaded (TTSM_ERR_LOAD and everything below it)."""
    _default_code = Status.ERR_LOAD


class TTSModelNotFoundError(TTSModelLoadingError):
    """Engine, model, file or language not found; the message lists every
    place searched (TTSM_ERR_NOT_FOUND)."""
    _default_code = Status.ERR_NOT_FOUND


class TTSDeviceError(TTSModelLoadingError):
    """Device unknown, unsupported on this build, or its driver failing
    (TTSM_ERR_DEVICE)."""
    _default_code = Status.ERR_DEVICE


class TTSOutOfMemoryError(TTSDeviceError):
    """A device budget or allocation would be exceeded; says what is needed,
    the budget, what is in use and what holds it (TTSM_ERR_OUT_OF_MEMORY)."""
    _default_code = Status.ERR_OUT_OF_MEMORY


class TTSModelFormatError(TTSModelLoadingError):
    """Not a valid or supported checkpoint: names the file, the offset or
    tensor and the rule broken (TTSM_ERR_FORMAT)."""
    _default_code = Status.ERR_FORMAT


class TTSModelIOError(TTSModelLoadingError):
    """Open, read, map or permission failure (TTSM_ERR_IO)."""
    _default_code = Status.ERR_IO


class TTSEngineError(TTSModelLoadingError):
    """Engine initialisation or synthesis failed (TTSM_ERR_ENGINE)."""
    _default_code = Status.ERR_ENGINE


class TTSInvalidArgumentError(TTSError, ValueError):
    """The caller passed something invalid (TTSM_ERR_INVALID_ARGUMENT). Not
    a load failure: it is a ValueError."""
    _default_code = Status.ERR_INVALID_ARGUMENT


class TTSUnsupportedDtypeError(TTSInvalidArgumentError, TypeError):
    """A tensor's dtype has no equivalent in the consumer asked for (PyTorch
    1.13 has no uint16, for instance): also a TypeError. Raised by the
    binding, not the library."""
    _default_code = Status.ERR_INVALID_ARGUMENT


class TTSCancelledError(TTSError):
    """A progress callback asked to stop (TTSM_ERR_CANCELLED)."""
    _default_code = Status.ERR_CANCELLED


CLASS_OF = {
    Status.ERR_LOAD: TTSModelLoadingError,
    Status.ERR_NOT_FOUND: TTSModelNotFoundError,
    Status.ERR_DEVICE: TTSDeviceError,
    Status.ERR_OUT_OF_MEMORY: TTSOutOfMemoryError,
    Status.ERR_FORMAT: TTSModelFormatError,
    Status.ERR_IO: TTSModelIOError,
    Status.ERR_ENGINE: TTSEngineError,
    Status.ERR_INVALID_ARGUMENT: TTSInvalidArgumentError,
    Status.ERR_CANCELLED: TTSCancelledError,
}


def from_c(code, err):
    """The exception for status `code` and the filled C ttsm_error `err`."""
    def dec(b):
        return b.decode("utf-8", "replace")
    n = min(err.n_attempts, len(err.attempts))
    attempts = [Attempt(_status(err.attempts[i].code), dec(err.attempts[i].message))
                for i in range(n)]
    st = _status(code)
    cls = CLASS_OF.get(st, TTSError)
    message = dec(err.message) or "libttsm returned %s" % _name(st)
    return cls(message, st if isinstance(st, Status) else None, dec(err.hint), attempts,
               err.n_attempts_dropped)
