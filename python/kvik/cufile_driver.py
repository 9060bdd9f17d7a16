"""cuFile driver properties by kvikio's names: ``get(name)``, ``set(name, value)`` /
``set({...})`` (also a context manager restoring the old values). Without cuFile, get() and
set() raise kvik.Error (KVIK_ENOCUFILE) except for "is_gds_available" (False)."""

from __future__ import annotations

from typing import Any

from . import _kvik

__all__ = ["get", "set"]

# kvikio's names -> kvik property, scale (kvikio's values are KiB for the sizes, like cuFile's).
_PROPS = {
    "poll_mode": (_kvik.CUFILE_POLL_MODE, True),
    "poll_thresh_size": (_kvik.CUFILE_POLL_THRESH_SIZE_KB, True),
    "max_device_cache_size": (_kvik.CUFILE_MAX_CACHE_SIZE_KB, True),
    "max_pinned_memory_size": (_kvik.CUFILE_MAX_PINNED_MEM_SIZE_KB, True),
    "max_direct_io_size": (_kvik.CUFILE_MAX_DIRECT_IO_SIZE_KB, True),
    "per_buffer_cache_size": (_kvik.CUFILE_PER_BUFFER_CACHE_SIZE_KB, False),
    "max_batch_io_size": (_kvik.CUFILE_MAX_BATCH_IO_SIZE, False),
    "max_batch_io_timeout": (_kvik.CUFILE_MAX_BATCH_IO_TIMEOUT_MS, False),
}


def get(name: str) -> Any:
    if name == "is_gds_available":
        return _kvik.cufile_available()
    try:
        prop, _ = _PROPS[name]
    except KeyError:
        raise KeyError(f"unknown cuFile property {name!r}; valid: {', '.join(_PROPS)}") from None
    v = _kvik.cufile_prop(prop)
    return bool(v) if name == "poll_mode" else v


class ConfigContextManager:
    def __init__(self, config: dict) -> None:
        self._old: dict = {}
        try:
            for name, value in config.items():
                if name not in _PROPS or not _PROPS[name][1]:
                    raise KeyError(f"cuFile property {name!r} cannot be set")
                self._old.setdefault(name, get(name))
                _kvik.cufile_prop(_PROPS[name][0], int(value))
        except BaseException:
            self._restore()
            raise

    def _restore(self) -> None:
        for name, value in self._old.items():
            _kvik.cufile_prop(_PROPS[name][0], int(value))

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._restore()


def set(*config) -> ConfigContextManager:
    if len(config) == 1 and isinstance(config[0], dict):
        return ConfigContextManager(config[0])
    if len(config) == 2 and isinstance(config[0], str):
        return ConfigContextManager({config[0]: config[1]})
    raise ValueError(
        "Valid arguments are kvik.cufile_driver.set(config: dict) or "
        "kvik.cufile_driver.set(key: str, value: Any)"
    )
