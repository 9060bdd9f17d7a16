"""kvik's settings by kvikio's names: ``get(name)`` and ``set(name, value)`` / ``set({...})``,
which also works as a context manager that restores the old values.

Each name maps to one entry of kvik's configuration table (``kvik_config_*`` in kvik.h, the
``KVIKIO_*`` environment variables), so values set here and in the environment are the same
settings. Values are checked by kvik: an invalid one raises ``kvik.Error`` (also a ValueError)
naming the setting and the value, and changes nothing.
"""

from __future__ import annotations

import builtins
import enum
from typing import Any

from . import _kvik

__all__ = ["CompatMode", "get", "set", "is_compat_mode_preferred", "names"]


class CompatMode(enum.IntEnum):
    """kvikio's CompatMode: OFF (cuFile required), ON (POSIX only), AUTO."""

    OFF = 0
    ON = 1
    AUTO = 2


# name -> (kvik key, kind). kinds: int, bool, compat, codes (list of ints), str.
_SETTINGS = {
    "compat_mode": (_kvik.CFG_COMPAT_MODE, "compat"),
    "num_threads": (_kvik.CFG_NTHREADS, "int"),
    "task_size": (_kvik.CFG_TASK_SIZE, "int"),
    "gds_threshold": (_kvik.CFG_GDS_THRESHOLD, "int"),
    "bounce_buffer_size": (_kvik.CFG_BOUNCE_BUFFER_SIZE, "int"),
    "http_max_attempts": (_kvik.CFG_HTTP_MAX_ATTEMPTS, "int"),
    "http_status_codes": (_kvik.CFG_HTTP_STATUS_CODES, "codes"),
    "http_timeout": (_kvik.CFG_HTTP_TIMEOUT, "int"),
    "auto_direct_io_read": (_kvik.CFG_AUTO_DIRECT_IO_READ, "bool"),
    "auto_direct_io_write": (_kvik.CFG_AUTO_DIRECT_IO_WRITE, "bool"),
    # kvik's own settings
    "auto_direct_io_read_overread": (_kvik.CFG_AUTO_DIRECT_IO_READ_OVERREAD, "bool"),
    "thread_pool_per_block_device": (_kvik.CFG_THREAD_POOL_PER_BLOCK_DEVICE, "bool"),
    "remote_verbose": (_kvik.CFG_REMOTE_VERBOSE, "bool"),
    "webhdfs_username": (_kvik.CFG_WEBHDFS_USERNAME, "str"),
    "log_level": (_kvik.CFG_LOG_LEVEL, "int"),
    "log_file": (_kvik.CFG_LOG_FILE, "str"),
    "prefer_cufile_compat": (_kvik.CFG_PREFER_CUFILE_COMPAT, "bool"),
    "stream_fallback": (_kvik.CFG_STREAM_FALLBACK, "bool"),
}
_ALIASES = {"thread_pool_nthreads": "num_threads"}


def names() -> list:
    """Every setting name get() and set() take."""
    return builtins.list(_SETTINGS)


def _lookup(name: str):
    if not isinstance(name, str):
        raise TypeError(f"setting names are str, not {type(name).__name__}")
    name = _ALIASES.get(name, name)
    try:
        return name, _SETTINGS[name]
    except KeyError:
        raise KeyError(
            f"unknown setting {name!r}; valid names: {', '.join(_SETTINGS)}"
        ) from None


def _parse_compat(value) -> CompatMode:
    if isinstance(value, CompatMode):
        return value
    if isinstance(value, bool):
        return CompatMode.ON if value else CompatMode.OFF
    if isinstance(value, int) and value in (0, 1, 2):
        return CompatMode(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("on", "true", "yes", "1"):
            return CompatMode.ON
        if v in ("off", "false", "no", "0"):
            return CompatMode.OFF
        if v == "auto":
            return CompatMode.AUTO
    raise ValueError(f"compat_mode: {value!r} is not ON, OFF or AUTO")


def get(config_name: str) -> Any:
    """The current value of a setting (kvikio's names; see names())."""
    name, (key, kind) = _lookup(config_name)
    v = _kvik.config_get(key)
    if kind == "compat":
        return CompatMode(v)
    if kind == "bool":
        return bool(v)
    if kind == "codes":
        return [int(c) for c in v.split(",") if c.strip()]
    return v


def _set_one(name: str, value) -> None:
    name, (key, kind) = _lookup(name)
    if kind == "compat":
        _kvik.config_set(key, int(_parse_compat(value)))
    elif kind == "bool":
        if not isinstance(value, (bool, int)):
            raise ValueError(f"{name}: {value!r} is not a bool")
        _kvik.config_set(key, 1 if value else 0)
    elif kind == "codes":
        if isinstance(value, str):
            text = value
        else:
            codes = list(value)  # TypeError for a non-iterable, as in kvikio
            if not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
                raise TypeError(f"{name}: {value!r} is not a list of ints")
            text = ",".join(str(c) for c in codes)
        _kvik.config_set(key, text)
    elif kind == "str":
        _kvik.config_set(key, str(value))
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: {value!r} is not an int")
        if value < 0:  # kvikio (Cython) raises OverflowError here too
            raise OverflowError(f"{name}: can't convert negative value {value} to an unsigned int")
        _kvik.config_set(key, value)


class ConfigContextManager:
    """Returned by set(): the values are already set; leaving a ``with`` block restores the
    values from before."""

    def __init__(self, config: dict) -> None:
        self._old: dict = {}
        try:
            for name, value in config.items():
                canonical, _ = _lookup(name)
                if canonical not in self._old:
                    self._old[canonical] = get(canonical)
                _set_one(canonical, value)
        except BaseException:
            self._restore()
            raise

    def _restore(self) -> None:
        for name, value in reversed(builtins.list(self._old.items())):
            _set_one(name, value)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._restore()


def set(*config) -> ConfigContextManager:
    """``set({"name": value, ...})`` or ``set("name", value)``: sets the settings now (for
    operations started after it) and returns a context manager that restores the old values
    when its ``with`` block ends. A value kvik refuses raises and leaves every setting as it was.
    """
    msg = (
        "Valid arguments are kvik.defaults.set(config: dict) or "
        "kvik.defaults.set(key: str, value: Any)"
    )
    if len(config) == 1:
        if not isinstance(config[0], dict):
            raise ValueError(msg)
        return ConfigContextManager(config[0])
    if len(config) == 2:
        if not isinstance(config[0], str):
            raise ValueError(msg)
        return ConfigContextManager({config[0]: config[1]})
    raise ValueError(msg)


def is_compat_mode_preferred() -> bool:
    """True when compat mode is ON, or AUTO without cuFile (kvikio's meaning)."""
    mode = get("compat_mode")
    if mode == CompatMode.ON:
        return True
    if mode == CompatMode.OFF:
        return False
    return not _kvik.cufile_available()
