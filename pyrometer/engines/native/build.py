"""Compile ``pass1.c`` once into a DuckDB extension, cached per user.

The file is keyed by a hash of the C sources, the DuckDB version and platform, so a changed
source or another DuckDB gets its own build. A build is written to a temporary name and
renamed, so that processes building at once never load half a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = ("pass1.c", "duckdb_capi.h")
NAME = "pyro_native"  # DuckDB calls <file name>_init_c_api
CAPI_VERSION = "v1.2.0"  # the same as PYRO_CAPI_VERSION in duckdb_capi.h
EXTENSION_VERSION = "0.1"


class BuildError(RuntimeError):
    """No compiler, or the compiler failed."""


def cache_dir() -> Path:
    """Where builds are kept: ``$PYROMETER_CACHE`` or the user's cache directory."""
    root = os.environ.get("PYROMETER_CACHE") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    return (base if os.environ.get("PYROMETER_CACHE") else base / "pyrometer") / "native"


def compiler() -> str | None:
    """``$CC``, else the first of cc, gcc, clang on the PATH."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"])
    return next((found for cc in ("cc", "gcc", "clang") if (found := shutil.which(cc))), None)


def footer(platform: str) -> bytes:
    """The 512 bytes DuckDB reads at the end of a loadable extension.

    A WebAssembly custom section named ``duckdb_signature`` (so the file stays a valid
    WebAssembly module too), eight 32-byte fields stored last first (magic ``4``, platform,
    C API version, extension version, ABI type ``C_STRUCT``), then 256 bytes of signature,
    empty: the connection must allow unsigned extensions. As DuckDB's
    ``scripts/append_metadata.cmake``; a ``C_STRUCT`` extension names the C API version it
    needs, not a DuckDB version.
    """
    fields = ["4", platform, CAPI_VERSION, EXTENSION_VERSION, "C_STRUCT", "", "", ""]
    out = b"\0" + bytes([0x93, 0x04, 16]) + b"duckdb_signature" + bytes([0x80, 0x04])
    for text in reversed(fields):
        raw = text.encode()
        if len(raw) > 32:
            raise ValueError(f"metadata field too long: {text!r}")
        out += raw + b"\0" * (32 - len(raw))
    out += b"\0" * 256
    return out


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes())
    return digest.hexdigest()


def extension_path(platform: str, duckdb_version: str) -> Path:
    """Path of the extension for this DuckDB, built first if missing."""
    key = hashlib.sha256(f"{source_hash()} {duckdb_version} {platform}".encode()).hexdigest()[:16]
    target = cache_dir() / key / f"{NAME}.duckdb_extension"
    if target.exists():
        return target
    cc = compiler()
    if cc is None:
        raise BuildError("no C compiler (set CC, or install cc, gcc or clang)")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / f"{NAME}.duckdb_extension"
        command = [cc, "-O2", "-shared", "-fPIC", "-o", str(built), str(HERE / "pass1.c"), "-lm"]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BuildError(f"{cc} failed: {error}") from error
        if run.returncode != 0:
            raise BuildError(f"{' '.join(command)} failed:\n{run.stderr.strip()}")
        with built.open("ab") as out:
            out.write(footer(platform))
        os.replace(built, target)
    return target
