"""Image validation (sagemaker_vision.core.images): the pure check of one image's bytes."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import Image

from sagemaker_vision.core import images
from sagemaker_vision.core.images import check_image


def _encode(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 0).save(buf, format=fmt)
    return buf.getvalue()


JPEG, PNG = _encode("JPEG"), _encode("PNG")


def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (CRC fixed up)."""
    data = bytearray(PNG)
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:12 + 4 + 13]))
    data[12 + 4 + 13:12 + 4 + 13 + 4] = struct.pack(">I", crc)
    return bytes(data)


def test_good_jpeg_and_png():
    for name, data, fmt in (("a.jpg", JPEG, "JPEG"), ("b.JPEG", JPEG, "JPEG"), ("c.png", PNG, "PNG")):
        check = check_image(name, data)
        assert check.ok and check.format == fmt and (check.width, check.height) == (64, 48)
    assert check_image("a.jpg", JPEG).content_type == "image/jpeg"


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("broken.jpg", os.urandom(3000), "not a readable image (3000 bytes"),
    ("empty.jpg", b"", "empty file (0 bytes)"),
    ("truncated.jpg", JPEG[: len(JPEG) // 2], "corrupt JPEG data"),
    ("png-inside.jpg", PNG, "extension says JPEG but the content is PNG"),
    ("jpeg-inside.png", JPEG, "extension says PNG but the content is JPEG"),
    ("anim.png", _encode("GIF"), "is a GIF image, not JPEG or PNG"),
    ("notes.txt", b"hello", "not a JPEG or PNG file name (extension '.txt'"),
    ("noext", JPEG, "extension '(none)'"),
    ("huge.png", _png_claiming(20_000, 6_000), "120,000,000 pixels, more than 100,000,000"),
])
def test_bad_images_name_their_reason(name, data, reason):
    check = check_image(name, data)
    assert not check.ok
    assert reason in check.reason


def test_byte_limit_follows_the_endpoint_type():
    big = b"\xff" * (images.SERVERLESS_MAX_BYTES + 1)
    assert "larger than" in check_image("big.jpg", big, max_bytes=images.max_bytes_for("serverless")).reason
    assert images.max_bytes_for("serverless") == 4_000_000
    assert images.max_bytes_for("provisioned") == 6 * 1024 * 1024  # botocore BodyBlob max
    assert images.max_bytes_for("async") == 40_000_000


def test_a_real_size_image_over_the_serverless_limit():
    noisy = Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3))
    buf = io.BytesIO()
    noisy.save(buf, format="PNG")
    data = buf.getvalue()
    assert len(data) > images.SERVERLESS_MAX_BYTES
    assert not check_image("noise.png", data, max_bytes=images.max_bytes_for("serverless")).ok
    assert check_image("noise.png", data, max_bytes=images.max_bytes_for("provisioned")).ok
