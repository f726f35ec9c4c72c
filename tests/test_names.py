"""Image repositories and kernelspec names derived from snapshot names: valid for Docker and Jupyter, and never
shared by two different names (``Foo`` and ``foo`` used to share ``yolosnap/foo`` and ``yolosnap-foo``)."""
from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from jupyter_yolosnap.exceptions import InvalidName
from jupyter_yolosnap.snapshot import names

DOCKER_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
KERNELSPEC = re.compile(r"^[a-z0-9._-]+$")
HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # one RFC 1123 label
valid_names = st.from_regex(names.NAME_PATTERN, fullmatch=True).filter(lambda n: ".." not in n)


def test_plain_names_are_kept_and_case_twins_are_told_apart():
    assert names.image_repository("yolo-v5-base") == "yolosnap/yolo-v5-base"
    assert names.kernel_name("yolo-v5-base") == "yolosnap-yolo-v5-base"
    assert names.image_repository("Foo") != names.image_repository("foo") == "yolosnap/foo"
    assert names.kernel_name("Foo") != names.kernel_name("foo")
    assert names.slug("Foo").startswith("foo__")
    assert names.slug("a._b") != names.slug("a-b")  # separators Docker would collapse
    assert names.container_hostname("yolo-v5-base") == "snapshot-yolo-v5-base"


@settings(max_examples=400, deadline=None)
@given(valid_names)
def test_every_valid_name_maps_to_a_valid_repository_and_kernelspec(name):
    assert DOCKER_REPOSITORY.fullmatch(names.image_repository(name)), name
    assert KERNELSPEC.fullmatch(names.kernel_name(name)) and len(names.kernel_name(name)) <= 128
    assert HOSTNAME.fullmatch(names.container_hostname(name)), name


@settings(max_examples=300, deadline=None)
@given(valid_names, valid_names)
def test_two_different_names_never_share_a_slug(a, b):
    if a != b:
        assert names.slug(a) != names.slug(b)


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "--x", "a\nb", "$(id)", "x" * 64, "..", "a..b", None, 3])
def test_invalid_names_are_refused_one_line(bad):
    with pytest.raises(InvalidName) as err:
        names.slug(bad)
    assert "\n" not in str(err.value) and "e.g. yolo-v5-base" in str(err.value)
