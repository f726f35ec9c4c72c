"""Host-side wheel collection helpers and the loopback server."""
from __future__ import annotations

import urllib.request

from jupyter_yolosnap import wheelhouse
from jupyter_yolosnap.recipe.dockerfile import WHEEL_SERVER


def test_serves_the_folder_on_the_fixed_address_or_a_free_one(tmp_path):
    (tmp_path / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"x")
    with wheelhouse.serve(tmp_path) as url:
        listing = urllib.request.urlopen(url, timeout=5).read().decode()
        assert "six-1.16.0-py2.py3-none-any.whl" in listing
        with wheelhouse.serve(tmp_path) as second:  # another build at the same time
            assert second != url and second.startswith("http://127.0.0.1:")
            assert "six-1.16.0" in urllib.request.urlopen(second, timeout=5).read().decode()
    assert url == WHEEL_SERVER
    with wheelhouse.serve(tmp_path) as again:  # released afterwards: the next build gets it back
        assert again == WHEEL_SERVER


def test_build_requires_of_local_sources(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["hatchling>=1.21"]\n')
    assert wheelhouse.build_requires({"source": "directory", "url": tmp_path.as_uri()}) == ("hatchling>=1.21",)
    # an editable build also asks the backend for more (hatchling: editables)
    assert wheelhouse.build_requires({"source": "editable", "url": tmp_path.as_uri()}) == ("hatchling>=1.21",
                                                                                            "editables")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert wheelhouse.build_requires({"source": "editable", "url": bare.as_uri()}) == wheelhouse.DEFAULT_BUILD_REQUIRES
    assert wheelhouse.build_requires({"source": "archive", "url": "file:///x/a-1-py3-none-any.whl"}) == ()


def test_cached_wheels_are_recognised(tmp_path):
    for name in ("Foo_Bar-1.0-py3-none-any.whl", "torch-2.1.2+cu121-cp311-cp311-linux_x86_64.whl", "junk.txt"):
        (tmp_path / name).write_bytes(b"")
    assert wheelhouse._have(tmp_path) == {("foo-bar", "1.0"), ("torch", "2.1.2+cu121")}
