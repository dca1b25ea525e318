"""What members attach: pictures prepared before they leave, documents read as text.

Adapters hand the core the bytes of each file (:class:`Upload`, with its file name); what a file
*is* is decided here from its content, never from its name or the platform's claim alone:

- A picture (JPEG, PNG, WebP or GIF by its magic bytes) is decoded and re-encoded with Pillow,
  which rejects what is not really an image and drops every piece of metadata (EXIF, GPS, ...),
  and is scaled down to the largest size the model uses for the ``detail`` sent
  (``bot.chat.vision.prepared_size``), so no byte goes up that the model would throw away.
- A PDF's text is extracted with pypdf; a text file (plain text, Markdown, CSV, JSON, source code,
  logs) is recognised by decoding as UTF-8 (or UTF-16 with a byte-order mark) without control
  bytes. Either becomes part of the member's message, under its file name.
- Anything else, or anything too large, is refused with one clear sentence.

Decoding a picture is the costly part (a 12 MP photo is 36 MB of pixels): it runs in a worker
thread, at most :data:`PREPARE_CONCURRENCY` at a time, and JPEGs are decoded at a reduced scale
when the target is small enough (``Image.draft``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.chat.vision import Detail, prepared_size
from bot.errors import ValidationError
from bot.i18n import _
from bot.minitoolai.client import sniff_image
from bot.ports import StoredImage

logger = logging.getLogger(__name__)

PREPARE_CONCURRENCY = 2
MAX_PIXELS = 50_000_000  # a bigger picture is refused before it is decoded (a "decompression bomb")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the most an adapter downloads of one file (Telegram's own limit)
JPEG_QUALITY = 85

_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True, slots=True)
class Upload:
    """A file a member attached, as bytes (never a platform link), with the name they gave it."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Document:
    """A document read as text, to become part of the member's message."""

    name: str
    text: str

    def as_message_part(self) -> str:
        name = " ".join(self.name.replace('"', "'").replace("<", "(").replace(">", ")").split())[:200]
        return f'<document name="{name}">\n{self.text}\n</document>'


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(b"%PDF-")


# ---------------------------------------------------------------- pictures


def prepare_picture(data: bytes, detail: Detail, *, name: str = "picture") -> StoredImage:
    """Decode, scale to what the model uses, re-encode without metadata; raise ``ValidationError``.

    A picture with transparency, or one that was PNG or GIF (screenshots, drawings), stays PNG so
    text in it stays sharp; photos become JPEG. The result carries its size and content hash.
    """
    if sniff_image(data) is None:
        raise ValidationError(
            _("{name} is not a picture I can look at. Send a JPEG, PNG, WebP or GIF.", name=name)
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            mime, prepared, width, height = _reencode(data, detail, name)
    except ValidationError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(
            _("{name} is not a picture I can read. Send a JPEG, PNG, WebP or GIF.", name=name)
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what Pillow raises for broken files
        logger.info("picture %s could not be decoded: %s", name, type(exc).__name__)
        raise ValidationError(
            _("{name} looks damaged; I could not read it. Please send it again.", name=name)
        ) from None
    return StoredImage(mime, prepared, width, height, hashlib.sha256(prepared).hexdigest())


def _reencode(data: bytes, detail: Detail, name: str) -> tuple[str, bytes, int, int]:
    image: Image.Image = Image.open(io.BytesIO(data))
    source_format = image.format or ""
    if source_format not in _FORMATS:
        raise ValidationError(_("{name} is not a JPEG, PNG, WebP or GIF picture.", name=name))
    if image.width * image.height > MAX_PIXELS:
        raise ValidationError(
            _(
                "{name} has too many pixels ({width} × {height}). Please send a smaller picture.",
                name=name,
                width=image.width,
                height=image.height,
            )
        )
    if source_format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale when that is still at least the target size.
        image.draft("RGB", prepared_size(image.width, image.height, detail))
    image.seek(0)  # an animated GIF or WebP: its first frame
    image.load()
    image = ImageOps.exif_transpose(image)  # a phone photo's EXIF rotation, before EXIF is dropped
    width, height = prepared_size(image.width, image.height, detail)
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    lossless = alpha or source_format in ("PNG", "GIF")
    image = image.convert("RGBA" if alpha else "RGB")
    if (width, height) != image.size:
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    if lossless:
        image.save(out, format="PNG")
        return "image/png", out.getvalue(), width, height
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "image/jpeg", out.getvalue(), width, height


class PicturePreparer:
    """Prepares pictures off the event loop, a few at a time, so memory stays bounded under load."""

    def __init__(self, concurrency: int = PREPARE_CONCURRENCY) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def prepare(self, image: StoredImage, detail: Detail, *, name: str = "picture") -> StoredImage:
        """A picture ready to send: ``image`` itself if it was prepared before (it has a size)."""
        if image.prepared:
            return image
        async with self._slots:
            return await asyncio.to_thread(prepare_picture, image.data, detail, name=name)


# ---------------------------------------------------------------- documents


def read_document(upload: Upload, max_bytes: int) -> Document:
    """The text of a PDF or text file, at most ``max_bytes`` of it; raise ``ValidationError``."""
    name = upload.name or "document"
    limit = f"{max_bytes // 1024} KB"
    if is_pdf(upload.data):
        text = _pdf_text(upload.data, name, max_bytes)
        if not text.strip():
            raise ValidationError(
                _(
                    "I found no text in {name} (a scanned PDF has only pictures of pages). "
                    "Please send the text, or the pages as pictures.",
                    name=name,
                )
            )
    else:
        if len(upload.data) > max_bytes:
            raise ValidationError(
                _(
                    "{name} is too large ({size} KB); I read documents up to {limit}.",
                    name=name,
                    size=len(upload.data) // 1024,
                    limit=limit,
                )
            )
        decoded = decode_text(upload.data)
        if decoded is None:
            raise ValidationError(
                _(
                    "I can't read {name}: I read pictures, text files (text, Markdown, CSV, JSON, code, logs) and PDFs.",
                    name=name,
                )
            )
        text = decoded
    if len(text.encode("utf-8")) > max_bytes:
        raise ValidationError(
            _(
                "The text of {name} is too long; I read documents up to {limit} of text.",
                name=name,
                limit=limit,
            )
        )
    return Document(name, text)


def decode_text(data: bytes) -> str | None:
    """The text of a file that is text, by its content: UTF-8, or UTF-16 with its byte-order mark.

    Control bytes other than tab, newlines, form feed and escape (colours in logs) mean it is not
    text (a binary file).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    if any(ord(c) < 32 and c not in "\t\n\r\f\x1b" for c in text):  # ESC: coloured logs
        return None
    return text


def _pdf_text(data: bytes, name: str, max_bytes: int) -> str:
    """The text of every page, stopping once it is past ``max_bytes`` (the caller refuses it then)."""
    from pypdf import PdfReader  # imported when the first PDF arrives
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        logger.info("PDF %s could not be read: %s", name, type(exc).__name__)
        raise ValidationError(_("{name} looks damaged; I could not read it as a PDF.", name=name)) from None
    if encrypted:
        raise ValidationError(_("{name} is protected with a password; I can't read it.", name=name))
    try:
        pages: list[str] = []
        size = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            size += len(pages[-1].encode("utf-8"))
            if size > max_bytes:
                break
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        logger.info("PDF %s could not be read: %s", name, type(exc).__name__)
        raise ValidationError(_("{name} looks damaged; I could not read it as a PDF.", name=name)) from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


def classify(upload: Upload) -> str:
    """``"picture"``, ``"pdf"`` or ``"text"`` by content (the last is checked when it is read)."""
    if sniff_image(upload.data) is not None:
        return "picture"
    if is_pdf(upload.data):
        return "pdf"
    return "text"
