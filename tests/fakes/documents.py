"""Files members attach, made in memory: photos with EXIF, large JPEGs, PDFs with text."""

from __future__ import annotations

import io
import random

from PIL import Image


def make_pdf(*pages: str) -> bytes:
    """A small valid PDF whose pages show ``pages`` in Helvetica (pypdf extracts the text back)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * n for n in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for n, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
            f" /Contents {page_ids[n] + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def make_jpeg(width: int, height: int, *, seed: int = 0, quality: int = 95, exif: bool = False) -> bytes:
    """A photo-like JPEG: smooth colour with noise (so it does not compress to nothing)."""
    rng = random.Random(seed)
    small = Image.new("RGB", (max(1, width // 16), max(1, height // 16)))
    small.putdata(
        [
            (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            for _ in range(small.width * small.height)
        ]
    )
    image = small.resize((width, height), Image.Resampling.BILINEAR)
    noise = Image.effect_noise((width, height), 60).convert("RGB")
    image = Image.blend(image, noise, 0.35)
    out = io.BytesIO()
    kwargs: dict[str, object] = {}
    if exif:
        data = Image.Exif()
        data[0x010F] = "SecretCam"  # Make
        data[0x0131] = "GPS-here"  # Software: stands for any private field
        kwargs["exif"] = data.tobytes()
    image.save(out, format="JPEG", quality=quality, **kwargs)
    return out.getvalue()


def make_png(width: int, height: int, *, alpha: bool = False) -> bytes:
    image = Image.new(
        "RGBA" if alpha else "RGB", (width, height), (10, 120, 200, 128) if alpha else (10, 120, 200)
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def picture_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size
