"""Fuzzing ``prepare_image``: any bytes give a fit image or a one-line ``ImageError``.

Inputs: random bytes, random bytes behind a real magic number, and real images of every
format and mode Pillow writes (16-bit, float, CMYK, LAB, palettes with transparency,
animations, EXIF rotations, ...) cut short, with bytes flipped, inserted or deleted, and with
the size in their header changed (CRC fixed, so the PNG decoder believes it), under random
limits and backend formats. Derandomized, so a failure is the same on every run.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import hypothesis.strategies as st
from hypothesis import event, given
from PIL import Image as PIL

from modelport.config import ImageSettings
from modelport.errors import ImageError
from modelport.images import DEFAULT_MEDIA_TYPES, load_image, prepare_image
from tests.support import FUZZ


def _encode(img: PIL.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def _seeds() -> dict[str, bytes]:
    grey = PIL.linear_gradient("L").resize((24, 16))
    rgb = PIL.merge("RGB", [grey, grey.transpose(PIL.Transpose.FLIP_LEFT_RIGHT), grey])
    rgba = rgb.copy()
    rgba.putalpha(grey)
    i16 = grey.convert("I").point(lambda v: v * 257).convert("I;16")
    exif = PIL.Exif()
    exif[0x0112] = 6
    frames = [PIL.new("P", (12, 8), i) for i in range(3)]
    pal = rgb.convert("P")
    made: dict[str, Callable[[], bytes]] = {
        "png-1": lambda: _encode(rgb.convert("1"), "PNG"),
        "png-L": lambda: _encode(grey, "PNG"),
        "png-LA": lambda: _encode(rgba.convert("LA"), "PNG"),
        "png-P-transparent": lambda: _encode(pal, "PNG", transparency=3),
        "png-RGB": lambda: _encode(rgb, "PNG"),
        "png-RGBA": lambda: _encode(rgba, "PNG"),
        "png-I16": lambda: _encode(i16, "PNG"),
        "png-animated": lambda: _encode(
            frames[0].convert("RGB"),
            "PNG",
            save_all=True,
            append_images=[f.convert("RGB") for f in frames[1:]],
        ),
        "jpeg-L": lambda: _encode(grey, "JPEG"),
        "jpeg-RGB-rotated": lambda: _encode(rgb, "JPEG", exif=exif),
        "jpeg-progressive": lambda: _encode(rgb, "JPEG", progressive=True),
        "jpeg-CMYK": lambda: _encode(rgb.convert("CMYK"), "JPEG"),
        "gif-animated": lambda: _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "gif-P": lambda: _encode(pal, "GIF", transparency=1),
        "webp-RGB": lambda: _encode(rgb, "WEBP"),
        "webp-RGBA": lambda: _encode(rgba, "WEBP", lossless=True),
        "webp-animated": lambda: _encode(
            rgb, "WEBP", save_all=True, append_images=[rgba.convert("RGB")]
        ),
        "bmp-1": lambda: _encode(rgb.convert("1"), "BMP"),
        "bmp-P": lambda: _encode(pal, "BMP"),
        "tiff-LA": lambda: _encode(rgba.convert("LA"), "TIFF"),
        "tiff-CMYK": lambda: _encode(rgb.convert("CMYK"), "TIFF"),
        "tiff-YCbCr": lambda: _encode(rgb.convert("YCbCr"), "TIFF"),
        "tiff-LAB": lambda: _encode(PIL.new("LAB", (24, 16), (50, 20, 30)), "TIFF"),
        "tiff-I": lambda: _encode(grey.convert("I"), "TIFF"),
        "tiff-I16B": lambda: _encode(PIL.new("I;16B", (24, 16), 300), "TIFF"),
        "tiff-F": lambda: _encode(grey.convert("F"), "TIFF"),
        "tiff-pages": lambda: _encode(rgb, "TIFF", save_all=True, append_images=[rgb]),
        "ico": lambda: _encode(rgba, "ICO"),
        "ppm-I": lambda: _encode(grey.convert("I"), "PPM"),
        "pfm-F": lambda: _encode(grey.convert("F"), "PPM"),
        "tga-LA": lambda: _encode(rgba.convert("LA"), "TGA"),
        "pcx-P": lambda: _encode(pal, "PCX"),
        "sgi-RGBA": lambda: _encode(rgba, "SGI"),
        "qoi": lambda: _encode(rgba, "QOI"),
    }
    return {name: make() for name, make in made.items()}


SEEDS = _seeds()
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"GIF87a", b"RIFF\0\0\0\0WEBPVP8 ",
         b"BM", b"II*\0", b"MM\0*", b"\0\0\1\0", b"P5\n", b"qoif", b"8BPS"]  # fmt: skip


def _png_with_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a PNG) claiming another size, its IHDR CRC fixed."""
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


@st.composite
def garbled(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    if name.startswith("png") and draw(st.booleans()):
        side = st.integers(0, 70_000)
        data = bytearray(_png_with_size(bytes(data), draw(side), draw(side)))
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        # mostly in the header, where the parsing is
        at = draw(st.one_of(st.integers(0, min(64, len(data) - 1)), st.integers(0, len(data) - 1)))
        how = draw(st.sampled_from(["cut", "flip", "insert", "delete", "set"]))
        if how == "cut":
            del data[at:]
        elif how == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:  # a field set to an extreme
            data[at : at + 4] = draw(
                st.sampled_from([b"\0\0\0\0", b"\xff\xff\xff\xff", b"\x7f\xff"])
            )
    return bytes(data)


images = st.one_of(
    st.binary(max_size=256),
    st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGIC), st.binary(max_size=256)),
    st.sampled_from(sorted(SEEDS.values())),
    *[garbled()] * 6,
)
limits = st.builds(
    ImageSettings,
    max_side=st.integers(16, 48),
    max_bytes=st.integers(1024, 4096),
    max_pixels=st.sampled_from([1, 300, *[4_000_000] * 8]),
    quality=st.integers(30, 100),
)
backends = st.one_of(
    st.sets(st.sampled_from(sorted(DEFAULT_MEDIA_TYPES)), min_size=1),
    st.just({"image/bmp"}),  # nothing modelport writes
)


def _check_refusal(exc: ImageError) -> None:
    """One line naming the image: what is wrong, and what to do."""
    message = str(exc)
    event(f"refused: {message.split(':')[1].split('(', maxsplit=1)[0].strip()[:40]}")
    assert exc.source == "<bytes>"
    assert message.startswith("<bytes>: ")
    assert "\n" not in message


@FUZZ
@given(data=images, limits=limits, media_types=backends)
def test_any_bytes_give_a_fit_image_or_a_clear_image_error(
    data: bytes, limits: ImageSettings, media_types: set[str]
) -> None:
    try:
        image = prepare_image(load_image(data), limits, media_types=media_types)
    except ImageError as exc:
        _check_refusal(exc)
        return
    assert image.data is not None
    event("prepared" if image.data is not data else "passed through")
    assert image.media_type in media_types
    assert len(image.data) <= limits.max_bytes
    with PIL.open(io.BytesIO(image.data)) as out:
        assert max(out.size) <= limits.max_side
        assert out.width * out.height <= limits.max_pixels
        if image.data is not data:  # re-encoded: in a plain mode
            assert out.mode in ("RGB", "RGBA", "L", "LA", "P")


def test_every_seed_format_and_mode_is_prepared_not_refused() -> None:
    """The ungarbled seeds are valid images: each must come out fit, none refused."""
    small = ImageSettings(max_side=16, max_bytes=2048)
    for name, data in sorted(SEEDS.items()):
        for limits in (ImageSettings(), small):
            image = prepare_image(load_image(data), limits)
            assert image.data is not None, name
            with PIL.open(io.BytesIO(image.data)) as out:
                assert out.mode in ("RGB", "RGBA", "L", "LA", "P"), (name, out.mode)
                assert max(out.size) <= limits.max_side, name
