"""Images: load them from anywhere, check them, and normalise them for a backend.

:func:`load_image` takes a path, bytes, a binary file object, a URL or an :class:`Image` and
reads nothing it does not need to. :func:`prepare_image` then makes the image fit for one
backend: a URL is passed through when the backend fetches URLs itself, else fetched within
size and time limits; the bytes are decoded with Pillow (format, truncation and decompression
bombs are caught), turned upright from their EXIF orientation, converted to a mode a model
reads (CMYK, 16-bit, palette, alpha), scaled down to ``[images] max_side`` and
``max_bytes``, and re-encoded when the backend does not take their format. An image that is
already fit is passed on byte for byte. Anything else is an :class:`~modelport.errors.ImageError`
saying what is wrong with which image; no bytes give another exception, or a Pillow warning.

Memory is bounded: the decoded image (at most ``max_pixels`` x 4 bytes; a large JPEG is
decoded at a smaller scale) plus at most ``(2 x max_side)^2 x 4`` bytes, since conversion and
the first, whole-factor reduction work tile by tile (see ``docs/images.md``).

Pillow is imported on first use, not with :mod:`modelport`.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, TypeAlias
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from .config import ImageSettings
from .errors import ImageError
from .logs import get_logger
from .types import Image, sniff_media_type

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "DEFAULT_MEDIA_TYPES",
    "ImageSource",
    "fetch_image",
    "load_image",
    "prepare_image",
]

ImageSource: TypeAlias = Image | str | os.PathLike[str] | bytes | IO[bytes]

#: What a backend is assumed to accept when it does not say (``media_types`` attribute).
DEFAULT_MEDIA_TYPES: frozenset[str] = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif"}
)
_FORMAT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
_URL_PREFIXES = ("http://", "https://", "data:")
_ORIENTATION = 0x0112
_log = get_logger()


def load_image(source: ImageSource) -> Image:
    """An :class:`Image` from a path, bytes, a binary file object, a URL or an ``Image``.

    Only the bytes are read here; :func:`prepare_image` checks what they hold.

    :raises ImageError: when the file cannot be read or is empty.
    """
    if isinstance(source, Image):
        return source
    if isinstance(source, bytes | bytearray | memoryview):
        return _wrap(bytes(source), "<bytes>")
    if isinstance(source, io.TextIOBase):
        raise ImageError(
            "the file object gives text, not bytes",
            source=str(getattr(source, "name", "<file object>")),
            hint="open the file in binary mode ('rb')",
        )
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        label = os.fspath(name) if isinstance(name, str | os.PathLike) else "<file object>"
        try:
            data = source.read()
        except OSError as exc:
            raise ImageError(f"cannot read: {exc}", source=str(label)) from exc
        if not isinstance(data, bytes):
            raise ImageError(
                "the file object gave text, not bytes",
                source=str(label),
                hint="open the file in binary mode ('rb')",
            )
        return _wrap(data, str(label))
    text = os.fspath(source)
    if text.startswith(_URL_PREFIXES):
        return Image.from_url(text)
    try:
        with open(text, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ImageError("no such file", source=text) from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image file", source=text) from None
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror}", source=text) from exc
    return _wrap(data, text)


def _wrap(data: bytes, source: str) -> Image:
    if not data:
        raise ImageError("the image is empty (0 bytes)", source=source)
    return Image(data=data, media_type=sniff_media_type(data), source=source)


def _display_url(url: str) -> str:
    """The URL without query, fragment or credentials (signed URLs carry secrets there)."""
    if url.startswith("data:"):
        return url[: url.find(",") + 1 if "," in url else 30] + "..."
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _decode_data_url(url: str) -> bytes:
    header, sep, payload = url[5:].partition(",")
    source = _display_url(url)
    if not sep:
        raise ImageError("a data: URL needs a ',' before its data", source=source)
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"the data: URL is not valid base64 ({exc})", source=source) from None


def fetch_image(url: str, settings: ImageSettings | None = None) -> Image:
    """Download an image URL within ``fetch_max_bytes`` and ``fetch_timeout_s`` (in total).

    :raises ImageError: on a timeout, an HTTP error status, or a body over the limit.
    """
    import httpx

    settings = settings or ImageSettings()
    shown = _display_url(url)
    limit = settings.fetch_max_bytes
    deadline = time.monotonic() + settings.fetch_timeout_s
    too_big = ImageError(
        f"larger than the fetch limit of {limit} bytes",
        source=shown,
        hint="raise [images] fetch_max_bytes, or pass a smaller image",
    )
    try:
        with (
            httpx.Client(timeout=settings.fetch_timeout_s, follow_redirects=True) as client,
            client.stream("GET", url, headers={"accept": "image/*"}) as response,
        ):
            if response.status_code >= 400:
                raise ImageError(
                    f"fetching gave HTTP {response.status_code} {response.reason_phrase}",
                    source=shown,
                    hint="check the URL is public and still valid",
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_big
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise too_big
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("total time limit", request=response.request)
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise ImageError(
            f"fetching took longer than {settings.fetch_timeout_s:g}s",
            source=shown,
            hint="raise [images] fetch_timeout_s, or download the image and pass the file",
        ) from None
    except httpx.HTTPError as exc:
        raise ImageError(f"cannot fetch: {exc}", source=shown) from None
    return _wrap(b"".join(chunks), shown)


def prepare_image(
    image: Image,
    settings: ImageSettings | None = None,
    *,
    media_types: Collection[str] | None = None,
    accepts_urls: bool = True,
) -> Image:
    """``image`` made fit for a backend that takes ``media_types`` (and URLs, or not).

    :raises ImageError: saying what is wrong (not an image, truncated, too many pixels, ...).
    """
    settings = settings or ImageSettings()
    accepted = frozenset(media_types) if media_types else DEFAULT_MEDIA_TYPES
    url = image.url
    if url is not None:
        if url.startswith("data:"):
            image = _wrap(_decode_data_url(url), _display_url(url))
        elif accepts_urls:
            return image
        else:
            image = fetch_image(url, settings)
    assert image.data is not None
    return _normalise(image.data, image.source, settings, accepted)


def _reason(exc: BaseException) -> str:
    """An exception's message on one short line (Pillow's may span lines, or be empty)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else f"{text[:197]}..."


def _open(data: bytes, source: str, settings: ImageSettings) -> PILImage:
    """The image read from ``data`` and decoded (frame 0), within ``max_pixels``; a JPEG
    much larger than ``max_side`` is decoded at a smaller scale straight away."""
    from PIL import Image as PIL
    from PIL import UnidentifiedImageError

    try:
        img = PIL.open(io.BytesIO(data))
    except PIL.DecompressionBombError as exc:
        raise _bomb(source, settings, str(exc)) from None
    except UnidentifiedImageError:
        known = sniff_media_type(data)
        if known is not None:
            raise ImageError(
                f"starts like {known} but its header is damaged or cut short ({len(data)} bytes)",
                source=source,
                hint="the file may be incomplete; download or export it again",
            ) from None
        raise ImageError(
            f"not an image ({_describe_bytes(data)})",
            source=source,
            hint="check the file is an image and not, say, text or HTML with an image name",
        ) from None
    except Exception as exc:  # a plugin choking on a garbled header: OSError, EOFError, ...
        raise ImageError(f"cannot read the image header: {_reason(exc)}", source=source) from None
    width, height = img.size
    if width * height > settings.max_pixels:
        raise _bomb(source, settings, f"{width} x {height} = {width * height} pixels")
    if width < 1 or height < 1:
        raise ImageError(f"the image has no pixels ({width} x {height})", source=source)
    if img.format == "EPS":  # Pillow would run Ghostscript on it
        raise ImageError(
            "EPS is not read (it is a program, run by Ghostscript)",
            source=source,
            hint="convert it to PNG first",
        )
    longest = max(width, height)
    if img.format == "JPEG" and longest >= 2 * settings.max_side:
        # decode at 1/2, 1/4 or 1/8 scale straight away (JPEG's DCT allows it), never below
        # max_side: several times faster for large photos, and they are scaled down anyway
        scale = settings.max_side / longest
        img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    try:
        img.load()
    except MemoryError:
        raise ImageError(
            f"not enough memory to decode this {width} x {height} image",
            source=source,
            hint="lower [images] max_pixels, or scale the image down first",
        ) from None
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        what = "truncated" if "truncated" in str(exc) else "damaged"
        raise ImageError(
            f"the {img.format or 'image'} data is {what}: {_reason(exc)}",
            source=source,
            hint="the file may be incomplete; download or export it again",
        ) from None
    return img


def _bomb(source: str, settings: ImageSettings, detail: str) -> ImageError:
    return ImageError(
        f"too many pixels ({detail}; the limit is {settings.max_pixels})",
        source=source,
        hint="this may be a decompression bomb; if the image is genuine, raise "
        "[images] max_pixels or scale it down first",
    )


def _describe_bytes(data: bytes) -> str:
    head = data[:12]
    if head.isascii() and all(c >= 32 or c in b"\t\r\n" for c in head):
        return f"starts with text {head.decode('ascii')!r}"
    return f"starts with bytes {head.hex(' ')}"


#: The filter :func:`_quiet_pillow` adds, as it stands in ``warnings.filters``.
_PILLOW_FILTER = ("ignore", None, Warning, re.compile(r"PIL\."), 0)
_filter_lock = threading.Lock()


def _quiet_pillow() -> None:
    """Ignore the warnings Pillow's own modules raise, for good: it warns about odd but
    readable files (corrupt EXIF, a bomb under its own limit), the checks here decide, and a
    host running with ``-W error`` must not see a traceback.

    One filter, added to ``warnings.filters`` the first time (and again should something
    reset the filters); never ``warnings.catch_warnings``, which swaps the process's filters
    and, entered by two threads at once, can leave them swapped. Pillow's deprecation
    warnings about a caller's code are raised in that caller's module, so they still show.
    """
    if _PILLOW_FILTER not in warnings.filters:
        with _filter_lock:
            if _PILLOW_FILTER not in warnings.filters:
                warnings.filterwarnings("ignore", module=_PILLOW_FILTER[3].pattern)


def _normalise(
    data: bytes, source: str, settings: ImageSettings, accepted: frozenset[str]
) -> Image:
    _quiet_pillow()
    return _normalised(_open(data, source, settings), data, source, settings, accepted)


@contextmanager
def _conversion_errors(source: str, what: str) -> Iterator[None]:
    """Pillow's errors past the first decode (data damaged past the first frame, say) as
    :class:`ImageError`. Holds no reference to the image, so it can be freed on the way."""
    try:
        yield
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(
            f"not enough memory to convert this {what}",
            source=source,
            hint="lower [images] max_pixels, or scale the image down first",
        ) from None
    except Exception as exc:
        raise ImageError(
            f"cannot convert this {what}: {_reason(exc)}",
            source=source,
            hint="the file may be damaged; open and save it again in an image editor",
        ) from None


def _frames(img: PILImage) -> int | None:
    """How many frames ``img`` has; ``None`` when its later frames cannot be read."""
    try:
        return int(getattr(img, "n_frames", 1))
    except Exception:  # a later frame's header is damaged: frame 0 is what is used anyway
        return None


def _orientation(img: PILImage) -> int:
    try:
        value = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # damaged EXIF: nothing to go by
        return 1
    return value if isinstance(value, int) else 1


def _normalised(
    img: PILImage, data: bytes, source: str, settings: ImageSettings, accepted: frozenset[str]
) -> Image:
    """The decoded ``img`` made fit, or ``data`` itself when it is fit already. Only this
    frame holds ``img``, and rebinds it as it converts: the decoded original is freed as soon
    as it is reduced."""
    with _conversion_errors(source, f"{img.size[0]} x {img.size[1]} {img.format or 'image'}"):
        media_type = _FORMAT_TYPES.get(img.format or "")
        frames = _frames(img)
        transpose = _TRANSPOSE.get(_orientation(img))
        plain_mode = img.mode in ("RGB", "RGBA", "L", "LA") or (
            img.mode == "P" and media_type in ("image/png", "image/gif")
        )
        fits = max(img.size) <= settings.max_side and len(data) <= settings.max_bytes
        if media_type in accepted and frames == 1 and transpose is None and plain_mode and fits:
            return Image(data=data, media_type=media_type, source=source)

        changes: list[str] = []
        if frames != 1:
            if img.tell() != 0:  # counting the frames may have moved on
                img.seek(0)
            changes.append(f"first of {frames} frames" if frames else "first frame only")
        before = img.size
        img, converted = _reduced(img, settings.max_side)
        if converted:
            changes.append(converted)
        if transpose is not None:
            from PIL import Image as PIL

            img = img.transpose(PIL.Transpose[transpose])
            changes.append("rotated upright")
        if max(img.size) > settings.max_side:
            img.thumbnail((settings.max_side, settings.max_side), _lanczos())
        if img.mode == "RGBa":  # premultiplied, for scaling; back to plain alpha
            img = img.convert("RGBA")
        if img.size != before and img.size != before[::-1]:
            changes.append(f"scaled {before[0]}x{before[1]} to {img.size[0]}x{img.size[1]}")
        photo = media_type == "image/jpeg"
        encoded, out_type = _encode(img, source, settings, accepted, photo=photo)
        if out_type != media_type:
            changes.append(f"re-encoded as {out_type}")
        _log.info("image_normalised", source=source, changes=changes, bytes=len(encoded))
        return Image(data=encoded, media_type=out_type, source=source)


def _lanczos() -> Any:
    from PIL import Image as PIL

    return PIL.Resampling.LANCZOS


#: EXIF orientation -> the ``PIL.Image.Transpose`` that turns the image upright.
_TRANSPOSE: dict[int, str] = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
#: The side of the square tiles a large image is converted and reduced in (about 1 Mpx).
_TILE = 1024


def _reduced(img: PILImage, max_side: int) -> tuple[PILImage, str | None]:
    """``img`` in a plain mode (RGB, RGBA, L or LA; premultiplied ``RGBa`` for alpha that is
    to be scaled further), shrunk by a whole factor until its longer side is at most twice
    ``max_side``; and what was converted, if anything.

    Both are done tile by tile, so the memory needed beyond the decoded image is the result
    plus one tile, never a full-size copy in another mode: a 16-bit or palette image near
    ``max_pixels`` is never widened to 32 bits a pixel whole.
    """
    from PIL import Image as PIL

    width, height = img.size
    factor = max(1, math.ceil(max(width, height) / (2 * max_side)))
    mode, convert, converted = _plain(img)
    if factor == 1 and convert is None:
        return img, None
    scaling = max(width, height) > max_side
    if mode == "RGBA" and scaling:  # reduce and resize premultiplied, without a full copy
        mode, convert = "RGBa", _then(convert, "RGBa")
    out = PIL.new(mode, (math.ceil(width / factor), math.ceil(height / factor)))
    step = factor * max(1, _TILE // factor)
    for top in range(0, height, step):
        for left in range(0, width, step):
            tile = img.crop((left, top, min(width, left + step), min(height, top + step)))
            if convert is not None:
                tile = convert(tile)
            if factor > 1:
                tile = tile.reduce(factor)
            out.paste(tile, (left // factor, top // factor))
    return out, converted


def _then(convert: Callable[[PILImage], PILImage] | None, mode: str) -> Callable[..., PILImage]:
    def both(tile: PILImage) -> PILImage:
        return (convert(tile) if convert is not None else tile).convert(mode)

    return both


def _extrema(img: PILImage) -> tuple[float, float]:
    """The lowest and highest value of a one-band image."""
    extrema: Any = img.getextrema()
    return float(extrema[0]), float(extrema[1])


def _plain(img: PILImage) -> tuple[str, Callable[[PILImage], PILImage] | None, str | None]:
    """The plain mode for ``img`` (RGB, RGBA, L or LA), how to convert a tile of it there
    (``None``: no need), and what that conversion is, for the log."""
    mode = img.mode
    if mode in ("RGB", "RGBA", "L", "LA"):
        return mode, None, None
    if mode.startswith("I;16") or mode == "I":
        # 16-bit (or 32-bit) grey: scale to 8 bits rather than clip
        high = 65535 if mode.startswith("I;16") else max(int(_extrema(img)[1]), 1)

        def grey(tile: PILImage) -> PILImage:
            return tile.convert("I").point(lambda v: v * (255 / high)).convert("L")

        return "L", grey, f"{mode} to 8-bit grey"
    if mode == "F":
        low, top = _extrema(img)
        if not (math.isfinite(low) and math.isfinite(top)):
            low, top = 0.0, 255.0
        span = (top - low) or 1.0

        def floats(tile: PILImage) -> PILImage:
            return tile.point(lambda v: (v - low) * (255 / span)).convert("L")

        return "L", floats, "float to 8-bit grey"
    if mode in ("P", "PA"):
        target = "RGBA" if "transparency" in img.info or mode == "PA" else "RGB"
        return target, lambda tile: tile.convert(target), f"palette to {target}"
    if mode == "1":
        return "L", lambda tile: tile.convert("L"), "1-bit to grey"
    target = "RGBA" if mode.endswith(("A", "a")) else "RGB"
    return target, lambda tile: tile.convert(target), f"{mode} to {target}"


def _encode(
    img: PILImage,
    source: str,
    settings: ImageSettings,
    accepted: frozenset[str],
    *,
    photo: bool,
) -> tuple[bytes, str]:
    """Encode in the best accepted format, stepping quality and size down to fit."""
    has_alpha = img.mode in ("RGBA", "LA")
    lossless = "image/png" if "image/png" in accepted else None
    lossy = next(
        (
            t
            for t in (("image/webp", "image/jpeg") if has_alpha else ("image/jpeg", "image/webp"))
            if t in accepted
        ),
        None,
    )
    if lossless is None and lossy is None:
        raise ImageError(
            f"the backend takes only {', '.join(sorted(accepted))}, which modelport cannot write",
            source=source,
        )
    order = [lossy, lossless] if photo else [lossless, lossy]
    formats = [f for f in order if f is not None]
    for _ in range(8):
        for media_type in formats:
            qualities = [None] if media_type == "image/png" else [settings.quality, 75, 60]
            for quality in qualities:
                data = _save(img, media_type, quality)
                if len(data) <= settings.max_bytes:
                    return data, media_type
        width, height = img.size
        if max(width, height) <= 16:
            break
        img = img.resize((max(1, width * 3 // 4), max(1, height * 3 // 4)), _lanczos())
    raise ImageError(
        f"cannot be made smaller than [images] max_bytes = {settings.max_bytes}",
        source=source,
        hint="raise [images] max_bytes",
    )


def _save(img: PILImage, media_type: str, quality: int | None) -> bytes:
    out = io.BytesIO()
    if media_type == "image/png":
        img.save(out, "PNG", optimize=False, compress_level=6)
    elif media_type == "image/jpeg":
        _flatten(img).save(out, "JPEG", quality=quality, optimize=True)
    elif media_type == "image/webp":
        img.save(out, "WEBP", quality=quality)
    else:  # pragma: no cover - _encode never asks for another
        raise ValueError(media_type)
    return out.getvalue()


def _flatten(img: PILImage) -> PILImage:
    """The image without alpha, transparent parts on white (JPEG has no alpha)."""
    if img.mode in ("RGB", "L"):
        return img
    from PIL import Image as PIL

    rgba = img.convert("RGBA")
    background = PIL.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
