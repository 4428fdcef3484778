"""Images: a generated corpus of bad and awkward images, through the public functions."""

from __future__ import annotations

import base64
import io
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import respx
from PIL import Image as PIL

from modelport import Image
from modelport.config import ImageSettings
from modelport.errors import ImageError
from modelport.images import fetch_image, load_image, prepare_image
from modelport.testing import TINY_PNG


def encode(img: PIL.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def noise(width: int, height: int) -> PIL.Image:
    """Incompressible pixels, so encoded sizes are large and truncation bites."""
    channels = [PIL.effect_noise((width, height), 80) for _ in range(3)]
    return PIL.merge("RGB", channels)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels, with one tiny IDAT (a bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def opened(image: Image) -> PIL.Image:
    assert image.data is not None
    return PIL.open(io.BytesIO(image.data))


def prepare(data: bytes, **settings: int) -> Image:
    return prepare_image(load_image(data), ImageSettings(**settings))


# --- the bad-image corpus: every one is a clear ImageError naming the image -----------------


def _truncated_jpeg() -> bytes:
    data = encode(noise(300, 200), "JPEG", quality=95)
    return data[: len(data) // 2]


def _truncated_png() -> bytes:
    data = encode(noise(300, 200), "PNG")
    return data[: len(data) // 2]


BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty.jpg": (lambda: b"", "empty (0 bytes)"),
    "notes.jpg": (lambda: b"Dear diary, today I", "not an image (starts with text 'Dear diary, '"),
    "page.png": (lambda: b"<!doctype html><html>", "not an image (starts with text '<!doctype ht'"),
    "cut.jpg": (_truncated_jpeg, "the JPEG data is truncated"),
    "cut.png": (_truncated_png, "the PNG data is"),
    "bomb.png": (lambda: png_header_only(20_000, 20_000), "too many pixels"),
    "binary.jpg": (lambda: bytes(range(7, 64)), "not an image (starts with bytes 07 08 09"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_images_are_clear_errors_naming_the_file(name: str, tmp_path: Path) -> None:
    make, what = BAD[name]
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(ImageError) as caught:
        prepare_image(load_image(path))
    assert str(caught.value).startswith(f"{path}: ")
    assert what in str(caught.value)
    assert caught.value.source == str(path)


def test_a_decompression_bomb_is_refused_from_its_header_alone() -> None:
    # 400 megapixels declared; Pillow would need 50 MB even at 1 bit per pixel
    with pytest.raises(ImageError, match=r"too many pixels .*decompression bomb"):
        prepare(png_header_only(20_000, 20_000))
    # also below Pillow's own limit: the configured max_pixels rules
    with pytest.raises(ImageError, match=r"5000 x 5000 = 25000000 pixels; the limit is 1000000"):
        prepare(png_header_only(5000, 5000), max_pixels=1_000_000)


# --- awkward but usable images are normalised ---------------------------------------------------


def test_a_fit_image_passes_byte_for_byte() -> None:
    image = prepare(TINY_PNG)
    assert image.data == TINY_PNG
    assert image.media_type == "image/png"


def test_cmyk_jpeg_becomes_rgb_jpeg() -> None:
    cmyk = encode(PIL.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG")
    image = prepare(cmyk)
    assert image.media_type == "image/jpeg"
    out = opened(image)
    assert out.mode == "RGB"
    red, green, blue = out.getpixel((5, 5))  # type: ignore[misc]
    assert (red > 200, green < 60, blue < 60) == (True, True, True)


def test_16_bit_png_is_scaled_to_8_bits_not_clipped() -> None:
    grey16 = PIL.new("I;16", (8, 8))
    grey16.putdata([32768] * 64)
    source = encode(grey16, "PNG")
    assert PIL.open(io.BytesIO(source)).mode == "I;16"
    out = opened(prepare(source))
    assert out.mode == "L"
    assert 126 <= out.getpixel((0, 0)) <= 129  # type: ignore[operator]


def test_a_large_16_bit_image_is_reduced_then_scaled_to_8_bits() -> None:
    # converted and reduced tile by tile: never widened to 32 bits a pixel whole
    ramp = PIL.linear_gradient("L").resize((5000, 300)).convert("I").point(lambda v: v * 257)
    source = encode(ramp.convert("I;16"), "PNG")
    out = opened(prepare(source))
    assert (out.mode, out.size) == ("L", (2048, 123))
    assert out.getpixel((5, 0)) < 10  # type: ignore[operator]
    assert out.getpixel((2040, 122)) > 245  # type: ignore[operator]
    assert 110 < out.getpixel((1024, 60)) < 145  # type: ignore[operator]


def test_alpha_is_scaled_premultiplied_so_hidden_colour_does_not_bleed() -> None:
    # every other column: fully transparent red, then opaque blue
    img = PIL.new("RGBA", (5000, 40), (0, 0, 255, 255))
    for x in range(0, 5000, 2):
        img.paste((255, 0, 0, 0), (x, 0, x + 1, 40))
    out = opened(prepare(encode(img, "PNG")))
    assert (out.mode, out.size) == ("RGBA", (2048, 16))
    red, _, blue, alpha = out.getpixel((1000, 8))  # type: ignore[misc]
    assert (red < 10, blue > 240, 100 < alpha < 155) == (True, True, True)


def test_a_large_rotated_image_is_reduced_then_turned_upright() -> None:
    exif = PIL.Exif()
    exif[0x0112] = 6
    image = prepare(encode(PIL.new("RGB", (5000, 1000), (200, 0, 0)), "PNG", exif=exif))
    assert opened(image).size == (410, 2048)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("I;16B", "TIFF"), ("I", "TIFF"), ("F", "TIFF"), ("LAB", "TIFF"), ("CMYK", "TIFF"),
     ("YCbCr", "TIFF"), ("PA", "TIFF"), ("LA", "TGA"), ("I", "PPM"), ("1", "BMP")],
)  # fmt: skip
def test_odd_modes_become_plain_ones(mode: str, fmt: str) -> None:
    colour: object = (40, 20, 30, 255)[: len(mode)] if len(mode) > 1 and mode[1] != ";" else 90
    if mode in ("PA", "LA"):
        colour = (3, 200)
    data = encode(PIL.new(mode, (30, 20), colour), fmt)  # type: ignore[arg-type]
    out = opened(prepare(data))
    assert out.mode in ("RGB", "RGBA", "L", "LA")
    assert out.size == (30, 20)


def test_pillow_warnings_never_escape_and_eps_is_not_run() -> None:
    with pytest.raises(ImageError, match="not an image"):
        prepare(b"II\x00*\x00\x00\x00\x01")  # Pillow warns "Corrupt EXIF data", then fails
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(ImageError, match="EPS is not read"):
        prepare(eps)


def test_images_prepared_in_threads_leave_the_warning_filters_as_they_were() -> None:
    """Pillow's warnings are ignored by one filter, added once: never by swapping the
    process's filters (``catch_warnings``), which threads entering at once can leave swapped
    (all warnings ignored for good, a host's ``-W error`` lost)."""
    exif = b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x05\x00\x00\x00\xff\xff\x00\x00"
    damaged_exif = encode(PIL.new("RGB", (20, 10), (1, 2, 3)), "PNG", exif=exif)
    corrupt_tiff = b"II\x00*\x00\x00\x00\x01"  # Pillow warns "Corrupt EXIF data", then fails
    threads = 8
    start = threading.Barrier(threads)

    def work(number: int) -> None:
        start.wait()
        for _ in range(20):
            if number % 2:
                assert prepare(damaged_exif).media_type == "image/png"  # Pillow warned
            else:
                with pytest.raises(ImageError):
                    prepare(corrupt_tiff)

    with warnings.catch_warnings():  # this thread's filters, as a host with -W error has them
        warnings.simplefilter("error")
        before = list(warnings.filters)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        added = [f for f in warnings.filters if f not in before]
        assert [f for f in warnings.filters if f in before] == before
        assert len(added) == 1
        action, message, category, module, _line = added[0]
        assert (action, message, category) == ("ignore", None, Warning)
        assert isinstance(module, re.Pattern)
        assert module.pattern == r"PIL\."
        with pytest.raises(UserWarning):  # what is not Pillow's is still an error
            warnings.warn("not Pillow's", UserWarning, stacklevel=1)
        prepare(damaged_exif)
        assert warnings.filters.count(added[0]) == 1  # added once only


def test_animated_gif_keeps_its_first_frame() -> None:
    frames = [PIL.new("P", (20, 10), colour) for colour in (1, 2, 3)]
    for frame, rgb in zip(frames, [(255, 0, 0), (0, 255, 0), (0, 0, 255)], strict=True):
        frame.putpalette([0, 0, 0, *rgb] * 2)
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert PIL.open(io.BytesIO(gif)).n_frames == 3  # type: ignore[attr-defined]
    image = prepare(gif)
    out = opened(image)
    assert getattr(out, "n_frames", 1) == 1
    assert out.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert image.media_type == "image/png"


def test_exif_orientation_is_applied() -> None:
    tall = PIL.new("RGB", (40, 20), (0, 0, 255))
    exif = PIL.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    image = prepare(encode(tall, "JPEG", exif=exif))
    assert opened(image).size == (20, 40)
    assert 0x0112 not in opened(image).getexif()


def test_palette_with_transparency_and_alpha_stay_png() -> None:
    pal = PIL.new("P", (10, 10), 0)
    pal.putpalette([255, 255, 255, 0, 0, 0])
    source = encode(pal, "PNG", transparency=0)
    assert prepare(source).data == source  # PNG palettes are fine as they are
    rgba = encode(PIL.new("RGBA", (3000, 100), (0, 128, 0, 100)), "PNG")
    out = opened(prepare(rgba))
    assert out.size == (2048, 68)
    assert out.mode == "RGBA"


def test_large_images_are_scaled_to_max_side() -> None:
    image = prepare(encode(noise(3000, 1000), "JPEG"), max_side=1024)
    assert opened(image).size == (1024, 341)
    assert image.media_type == "image/jpeg"


def test_images_over_max_bytes_are_re_encoded_then_shrunk() -> None:
    big = encode(noise(1200, 1200), "PNG")
    assert len(big) > 3_000_000
    image = prepare(big, max_bytes=150_000)
    assert image.data is not None
    assert len(image.data) <= 150_000
    assert image.media_type == "image/jpeg"  # noise is a photo in all but name


def test_formats_the_backend_does_not_take_are_re_encoded() -> None:
    bmp = encode(PIL.new("RGB", (30, 30), (9, 9, 9)), "BMP")
    tiff = encode(PIL.new("RGB", (30, 30), (9, 9, 9)), "TIFF")
    for data in (bmp, tiff):
        image = prepare(data)
        assert image.media_type == "image/png"
        assert opened(image).getpixel((1, 1)) == (9, 9, 9)
    only_jpeg = prepare_image(
        load_image(encode(PIL.new("RGBA", (10, 10), (0, 0, 0, 0)), "PNG")),
        media_types={"image/jpeg"},
    )
    assert only_jpeg.media_type == "image/jpeg"
    assert opened(only_jpeg).getpixel((5, 5))[0] > 240  # type: ignore[index]  # transparent on white


# --- sources -------------------------------------------------------------------------------------


def test_sources_path_bytes_file_object_and_image(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(TINY_PNG)
    assert load_image(path).source == str(path)
    assert load_image(str(path)).data == TINY_PNG
    assert load_image(TINY_PNG).source == "<bytes>"
    with path.open("rb") as file:
        assert load_image(file).source == str(path)
    assert load_image(io.BytesIO(TINY_PNG)).source == "<file object>"
    with path.open() as text_file, pytest.raises(ImageError, match="binary mode"):
        load_image(text_file)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")


def test_data_urls_are_decoded_and_checked() -> None:
    url = "data:image/png;base64," + base64.b64encode(TINY_PNG).decode()
    assert prepare_image(load_image(url)).data == TINY_PNG
    with pytest.raises(ImageError, match="not valid base64"):
        prepare_image(load_image("data:image/png;base64,@@@"))


def test_urls_pass_through_to_backends_that_fetch_them() -> None:
    image = prepare_image(load_image("https://img.test/cat.png"), accepts_urls=True)
    assert image.url == "https://img.test/cat.png"


@respx.mock
def test_urls_are_fetched_within_limits_for_backends_that_need_bytes() -> None:
    respx.get("https://img.test/cat.png").respond(200, content=TINY_PNG)
    image = prepare_image(load_image("https://img.test/cat.png"), accepts_urls=False)
    assert image.data == TINY_PNG
    assert image.source == "https://img.test/cat.png"

    respx.get("https://img.test/gone.png").respond(404)
    with pytest.raises(ImageError, match=r"img.test/gone.png: fetching gave HTTP 404"):
        fetch_image("https://img.test/gone.png")

    respx.get("https://img.test/huge.png").respond(
        200, headers={"content-length": "999999999"}, content=b"x"
    )
    with pytest.raises(ImageError, match="larger than the fetch limit of 1000 bytes"):
        fetch_image("https://img.test/huge.png", ImageSettings(fetch_max_bytes=1000))

    respx.get("https://img.test/stream.png").mock(
        return_value=httpx.Response(200, stream=httpx.ByteStream(b"x" * 1800))  # no length
    )
    with pytest.raises(ImageError, match="larger than the fetch limit"):
        fetch_image("https://img.test/stream.png", ImageSettings(fetch_max_bytes=1000))

    respx.get("https://img.test/slow.png").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(ImageError, match=r"took longer than 2s .*fetch_timeout_s"):
        fetch_image("https://img.test/slow.png", ImageSettings(fetch_timeout_s=2))


@respx.mock
def test_a_signed_url_s_query_never_reaches_an_error() -> None:
    signed = "https://bucket.test/cat.png?X-Signature=topsecretvalue&expires=1"
    respx.get(signed).respond(403)
    with pytest.raises(ImageError) as caught:
        fetch_image(signed)
    assert "topsecretvalue" not in str(caught.value)
    assert caught.value.source == "https://bucket.test/cat.png"


def test_image_settings_are_validated_from_config(tmp_path: Path) -> None:
    from modelport import load_settings
    from modelport.errors import ConfigError

    (tmp_path / "m.toml").write_text("[images]\nmax_side = 4\n")
    with pytest.raises(ConfigError, match=r"'images\.max_side': must be >= 16, not 4"):
        load_settings(tmp_path / "m.toml")
    (tmp_path / "m.toml").write_text("[images]\nmax_side = 512\n")
    assert load_settings(tmp_path / "m.toml").images.max_side == 512
