"""kvik's exception: ``kvik.Error``, a subclass of :class:`OSError`.

Every failure of the C library arrives as a ``kvik.Error`` carrying kvik's code and detail
message. For ``-errno`` codes the exception is also the matching built-in subclass of
``OSError`` (``FileNotFoundError``, ``PermissionError``, ...) with ``errno`` set, so code written
for Python's own file errors keeps working. kvik's own codes (``KVIK_E*``) have ``errno`` None,
except time-outs (``TimeoutError``, ``errno.ETIMEDOUT``); invalid arguments and out-of-range
offsets (``KVIK_EINVAL``, ``KVIK_EOVERFLOW``) are also ``ValueError``.
"""

from __future__ import annotations

import errno as _errno

__all__ = ["Error"]


class Error(OSError):
    """A failure reported by libkvik.

    Attributes
    ----------
    code: int
        kvik's return code (negative: ``-errno`` or a ``KVIK_E*`` value).
    name: str
        The code's symbolic name ("ENOENT", "KVIK_EINVAL").
    message: str
        kvik's detail: what failed, where (path, offset, size) and why.
    """

    code: int = 0
    name: str = ""
    message: str = ""

    def __str__(self) -> str:
        if self.errno is not None:
            return f"[Errno {self.errno}] {self.message}"
        return f"[{self.name}] {self.message}"


_classes: dict = {}
_KVIK_ERRNO = {"KVIK_ETIMEDOUT": _errno.ETIMEDOUT, "KVIK_ECANCELED": _errno.ECANCELED}
_VALUE_ERRORS = ("KVIK_EINVAL", "KVIK_EOVERFLOW")


def _class_for(errno_: int | None, name: str) -> type:
    key = errno_ if errno_ is not None else name
    cls = _classes.get(key)
    if cls is not None:
        return cls
    if errno_ is not None:
        builtin = type(OSError(errno_, ""))  # OSError picks its subclass by errno
        bases = (Error,) if builtin is OSError else (Error, builtin)
        cls_name = "Error" if builtin is OSError else builtin.__name__
    elif name in _VALUE_ERRORS:
        bases, cls_name = (Error, ValueError), "InvalidArgument"
    else:
        bases, cls_name = (Error,), "Error"
    cls = Error if bases == (Error,) else type(cls_name, bases, {"__module__": "kvik"})
    _classes[key] = cls
    return cls


def make(code: int, name: str, strerror: str, message: str, path: str | None) -> Error:
    """Builds the exception for kvik code `code` (called by the C extension)."""
    if -4096 < code < 0:
        errno_ = -code
    else:
        errno_ = _KVIK_ERRNO.get(name)
    cls = _class_for(errno_, name)
    exc = cls(errno_, message) if errno_ is not None else cls(message)
    exc.code = code
    exc.name = name
    exc.message = message
    if path is not None:
        exc.filename = path
    return exc
