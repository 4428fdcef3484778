"""Images: the peak memory of ``prepare_image`` for the worst images under the default limits.

    python benchmarks/image_memory.py [--cases i16,rgba64] [--old] [--pixels 63992000]

Each image is built row by row (never whole in memory) just under ``[images] max_pixels``:
16-bit grey, 48-bit RGB and 64-bit RGBA PNGs (a few hundred KB each, since their rows
repeat), an 8-bit RGBA PNG, a palette GIF and a baseline JPEG. Each case runs in a fresh
subprocess, which reports its peak resident set (``ru_maxrss``) after importing Pillow and
reading the file, and again after ``prepare_image``; the growth is what preparing the image
cost. ``tracemalloc`` would miss Pillow's own allocations, which are most of it.

``--old`` also measures ``core/modelport/images.py`` as last committed (``git show
HEAD:...``), loaded as a separate module, for a before/after table.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_PIXELS = 64_000_000


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, depth: int, colour: int, channels: int) -> bytes:
    """A PNG of a repeating gradient, compressed row by row."""
    row_bytes = width * channels * depth // 8
    row = bytes(i * 7 % 256 for i in range(row_bytes))
    packer = zlib.compressobj(9)
    parts = []
    for y in range(height):
        parts.append(packer.compress(b"\0" + row[y % 64 :] + row[: y % 64]))
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = b"".join(parts)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _pillow(mode: str, fmt: str) -> Callable[[int, int], bytes]:
    def build(width: int, height: int) -> bytes:
        from PIL import Image

        img = Image.linear_gradient("L").resize((width, height)).convert(mode)
        out = io.BytesIO()
        img.save(out, fmt)
        return out.getvalue()

    return build


CASES: dict[str, tuple[str, Callable[[int, int], bytes]]] = {
    "i16": ("16-bit grey PNG (I;16)", lambda w, h: png(w, h, 16, 0, 1)),
    "rgb48": ("48-bit RGB PNG", lambda w, h: png(w, h, 16, 2, 3)),
    "rgba64": ("64-bit RGBA PNG", lambda w, h: png(w, h, 16, 6, 4)),
    "rgba": ("8-bit RGBA PNG", lambda w, h: png(w, h, 8, 6, 4)),
    "gif": ("palette GIF", _pillow("P", "GIF")),
    "jpeg": ("baseline JPEG", _pillow("RGB", "JPEG")),
}

CHILD = """
import importlib.util, json, resource, sys
from pathlib import Path
which, path = sys.argv[1], sys.argv[2]
if which == "old":
    spec = importlib.util.spec_from_file_location("old_images", sys.argv[3])
    images = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(images)
else:
    from modelport import images
import PIL.Image, PIL.PngImagePlugin, PIL.JpegImagePlugin, PIL.GifImagePlugin
data = Path(path).read_bytes()
image = images.load_image(data)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = images.prepare_image(image)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before": before, "after": after, "out": len(out.data)}))
"""


def _old_module(tmp: Path) -> Path:
    """The committed images.py, its relative imports made absolute."""
    source = subprocess.run(
        ["git", "show", "HEAD:core/modelport/images.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = tmp / "old_images.py"
    path.write_text(source.replace("from .", "from modelport."))
    return path


def measure(which: str, image: Path, old: Path | None) -> dict[str, int]:
    args = [sys.executable, "-c", CHILD, which, str(image)]
    if old is not None:
        args.append(str(old))
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": 1, "message": tail}  # type: ignore[dict-item]
    result: dict[str, int] = json.loads(done.stdout)
    return result


def build(name: str, width: int, height: int, path: Path) -> None:
    """Build the image in a subprocess: Linux carries a parent's peak RSS over into the
    children it starts, so the parent must stay small."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "import image_memory as b; "
        "Path(sys.argv[5]).write_bytes(b.CASES[sys.argv[2]][1](int(sys.argv[3]), int(sys.argv[4])))"
    )
    here = str(Path(__file__).resolve().parent)
    args = [sys.executable, "-c", code, here, name, str(width), str(height), str(path)]
    subprocess.run(args, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--pixels", type=int, default=MAX_PIXELS - 8000)
    parser.add_argument("--old", action="store_true", help="also measure HEAD's images.py")
    args = parser.parse_args()
    width = 8000
    height = max(1, args.pixels // width)
    print(f"images of {width} x {height} = {width * height:,} pixels (limit {MAX_PIXELS:,})")
    print(f"{'case':<26}{'file':>10}{'version':>9}{'peak MiB':>10}{'growth MiB':>12}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        old = _old_module(tmp) if args.old else None
        for name in args.cases.split(","):
            title = CASES[name][0]
            path = tmp / f"{name}.img"
            build(name, width, height, path)
            size = f"{math.ceil(path.stat().st_size / 1024)} KB"
            versions = [("old", old), ("new", None)] if old is not None else [("new", None)]
            for version, module in versions:
                result = measure(version, path, module)
                if "error" in result:
                    print(f"{title:<26}{size:>10}{version:>9}  failed: {result['message']}")
                    continue
                peak, growth = result["after"] / 1024, (result["after"] - result["before"]) / 1024
                print(f"{title:<26}{size:>10}{version:>9}{peak:>10.0f}{growth:>12.0f}")


if __name__ == "__main__":
    main()
