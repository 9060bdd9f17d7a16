"""``kvik.RemoteFile``: kvikio's remote file (HTTP(S), S3, WebHDFS), by the same names, on
kvik_remote_* (libcurl). Reads go into host or device memory; ``pread`` splits the range into
``task_size`` pieces fetched in parallel."""

from __future__ import annotations

import enum
from typing import Optional

from . import _kvik
from ._buffer import as_buffer, span
from .cufile import IOFuture, _offset, _task_size

__all__ = ["RemoteEndpointType", "RemoteFile", "infer_remote_endpoint_type",
           "is_remote_file_available"]  # fmt: skip


class RemoteEndpointType(enum.Enum):
    """Kinds of remote endpoint (values are kvik's enum kvik_remote_type)."""

    AUTO = 0
    S3 = 1
    S3_PUBLIC = 2
    S3_PRESIGNED_URL = 3
    WEBHDFS = 4
    HTTP = 5


def is_remote_file_available() -> bool:
    """True if libkvik was built with libcurl (remote files work)."""
    return _kvik.remote_available()


def _allow_mask(allow_list) -> int:
    if allow_list is None:
        return 0
    mask = 0
    for t in allow_list:
        t = RemoteEndpointType(t) if not isinstance(t, RemoteEndpointType) else t
        if t is RemoteEndpointType.AUTO:
            raise ValueError("allow_list cannot hold AUTO")
        mask |= 1 << t.value
    return mask


def infer_remote_endpoint_type(url: str, allow_list=None) -> RemoteEndpointType:
    """The type RemoteFile.open(url) would choose, without any request."""
    return RemoteEndpointType(_kvik.remote_infer_type(url, _allow_mask(allow_list)))


def _nbytes(n) -> int:
    if n is None:
        return 0
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"nbytes must be a positive int or None, not {n!r}")
    return n


class RemoteFile:
    """A remote object opened for reading. Make one with the open_* class methods."""

    def __init__(self, handle) -> None:
        if not isinstance(handle, _kvik.Remote):
            raise TypeError("use RemoteFile.open(), open_http(), open_s3() ...")
        self._handle = handle

    @classmethod
    def _open(cls, url: str, kind: RemoteEndpointType, nbytes=None, allow=0, **aws) -> "RemoteFile":
        return cls(_kvik.Remote(url, kind.value, allow, _nbytes(nbytes), **aws))

    @classmethod
    def open_http(cls, url: str, nbytes: Optional[int] = None) -> "RemoteFile":
        """Any http(s) server that honours Range requests."""
        return cls._open(url, RemoteEndpointType.HTTP, nbytes)

    @staticmethod
    def _aws(region, key_id, secret, endpoint, token) -> dict:
        return {"region": region, "access_key_id": key_id, "secret_access_key": secret,
                "endpoint": endpoint, "session_token": token}  # fmt: skip

    @classmethod
    def open_s3(
        cls,
        bucket_name: str,
        object_name: str,
        nbytes: Optional[int] = None,
        aws_region_name: Optional[str] = None,
        aws_access_key_id: Optional[str] = None,
        aws_secret_access_key: Optional[str] = None,
        aws_endpoint_url: Optional[str] = None,
        aws_session_token: Optional[str] = None,
    ) -> "RemoteFile":
        """s3://bucket_name/object_name, signed (credentials from the arguments or AWS_*)."""
        return cls._open(
            f"s3://{bucket_name}/{object_name}", RemoteEndpointType.S3, nbytes,
            **cls._aws(aws_region_name, aws_access_key_id, aws_secret_access_key,
                       aws_endpoint_url, aws_session_token),
        )  # fmt: skip

    @classmethod
    def open_s3_url(
        cls,
        url: str,
        nbytes: Optional[int] = None,
        aws_region_name: Optional[str] = None,
        aws_access_key_id: Optional[str] = None,
        aws_secret_access_key: Optional[str] = None,
        aws_endpoint_url: Optional[str] = None,
        aws_session_token: Optional[str] = None,
    ) -> "RemoteFile":
        """An s3:// URL or an http(s) S3 URL (virtual-host or path style), signed."""
        if not url.startswith(("s3://", "http://", "https://")):
            raise ValueError(f"open_s3_url: {url!r} is not an s3:// or http(s):// URL")
        return cls._open(
            url, RemoteEndpointType.S3, nbytes,
            **cls._aws(aws_region_name, aws_access_key_id, aws_secret_access_key,
                       aws_endpoint_url, aws_session_token),
        )  # fmt: skip

    @classmethod
    def open_s3_public(cls, url: str, nbytes: Optional[int] = None) -> "RemoteFile":
        """A publicly readable S3 object (unsigned requests)."""
        return cls._open(url, RemoteEndpointType.S3_PUBLIC, nbytes)

    @classmethod
    def open_s3_presigned_url(cls, presigned_url: str, nbytes: Optional[int] = None) -> "RemoteFile":
        """A presigned S3 URL, used as it is."""
        return cls._open(presigned_url, RemoteEndpointType.S3_PRESIGNED_URL, nbytes)

    @classmethod
    def open_webhdfs(cls, url: str, nbytes: Optional[int] = None) -> "RemoteFile":
        """http(s)://host:port/webhdfs/v1/path"""
        return cls._open(url, RemoteEndpointType.WEBHDFS, nbytes)

    @classmethod
    def open(
        cls,
        url: str,
        remote_endpoint_type: RemoteEndpointType = RemoteEndpointType.AUTO,
        allow_list: Optional[list] = None,
        nbytes: Optional[int] = None,
    ) -> "RemoteFile":
        """Opens url as remote_endpoint_type (AUTO: inferred, kvikio's order), which must be in
        allow_list when one is given."""
        return cls._open(url, RemoteEndpointType(remote_endpoint_type), nbytes,
                         _allow_mask(allow_list))  # fmt: skip

    def close(self) -> None:
        self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def __enter__(self) -> "RemoteFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __str__(self) -> str:
        return f"<kvik.RemoteFile {self.remote_endpoint_type().name} {self._handle.url()}>"

    def remote_endpoint_type(self) -> RemoteEndpointType:
        return RemoteEndpointType(self._handle.type())

    def nbytes(self) -> int:
        return self._handle.size()

    def read(self, buf, size: Optional[int] = None, file_offset: int = 0) -> int:
        """pread(...).get()."""
        return self.pread(buf, size, file_offset).get()

    def pread(
        self, buf, size: Optional[int] = None, file_offset: int = 0, task_size: Optional[int] = None
    ) -> IOFuture:
        """Reads size bytes (None: the buffer's size) at file_offset into buf, in parallel
        ranged requests. A range past the end of the object raises (kvik.Error, ValueError)."""
        b = as_buffer(buf)
        n = span(b, size, 0, writable=True)
        off = _offset("file_offset", file_offset)
        return IOFuture(self._handle.pread(b.ptr, n, off, _task_size(task_size), b))
