"""Pictures prepared with Pillow and documents read as text, by content."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from bot.chat.attachments import Upload, classify, decode_text, prepare_picture, read_document
from bot.errors import ValidationError
from tests.fakes.documents import make_jpeg, make_pdf, make_png, picture_size

KB = 1024


def test_a_large_photo_is_scaled_to_what_the_model_uses_and_loses_its_metadata() -> None:
    photo = make_jpeg(4000, 3000, exif=True)
    assert b"SecretCam" in photo

    prepared = prepare_picture(photo, "high")

    assert ("image/jpeg", 1024, 768) == (prepared.mime, prepared.width, prepared.height)
    assert (1024, 768) == picture_size(prepared.data)
    assert b"SecretCam" not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as image:
        assert not image.getexif()
    assert hashlib.sha256(prepared.data).hexdigest() == prepared.digest
    assert len(prepared.data) < len(photo) / 5


def test_low_detail_sends_at_most_512_pixels_a_side() -> None:
    prepared = prepare_picture(make_jpeg(1600, 1200), "low")
    assert (512, 384) == (prepared.width, prepared.height)


def test_a_rotated_phone_photo_is_turned_upright() -> None:
    image = Image.new("RGB", (1600, 1200), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())

    prepared = prepare_picture(out.getvalue(), "auto")

    assert (768, 1024) == (prepared.width, prepared.height)


def test_a_screenshot_with_transparency_stays_png_and_small_pictures_keep_their_size() -> None:
    prepared = prepare_picture(make_png(300, 200, alpha=True), "high")
    assert ("image/png", 300, 200) == (prepared.mime, prepared.width, prepared.height)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<html>not a picture</html>", "not a picture I can look at"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 64, "not a picture I can read|damaged"),
        (make_jpeg(64, 64)[:400], "damaged"),  # cut off half-way
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "not a picture I can read|damaged"),
    ],
)
def test_what_is_not_really_a_picture_is_refused_in_one_sentence(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        prepare_picture(data, "auto", name="cat.jpg")


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    out = io.BytesIO()
    Image.new("1", (10_000, 6_000)).save(out, format="PNG")  # 60 MP in a few kilobytes
    with pytest.raises(ValidationError, match="too many pixels"):
        prepare_picture(out.getvalue(), "auto", name="bomb.png")


def test_text_files_are_read_by_content_whatever_their_name() -> None:
    code = "def main():\n    print('hi')\n"
    assert code == read_document(Upload("script.py", code.encode()), 200 * KB).text
    assert "a,b\n1,2\n" == read_document(Upload("data", b"a,b\n1,2\n"), 200 * KB).text
    assert "héllo" == read_document(Upload("notes.txt", "héllo".encode("utf-16")), 200 * KB).text
    assert "log line" == read_document(Upload("x.png", b"\xef\xbb\xbflog line"), 200 * KB).text
    assert (
        "\x1b[31mERROR\x1b[0m boom" == read_document(Upload("app.log", b"\x1b[31mERROR\x1b[0m boom"), KB).text
    )
    assert "text" == classify(Upload("photo.jpg", b"plain words"))
    assert "picture" == classify(Upload("notes.txt", make_png(2, 2)))


def test_binary_files_are_refused_with_what_can_be_read() -> None:
    with pytest.raises(ValidationError, match=r"I can't read archive.zip: I read pictures, text files"):
        read_document(Upload("archive.zip", b"PK\x03\x04\x14\x00\x00\x00binary\x00\x01"), 200 * KB)
    assert decode_text(b"\xff\xfe\x00") is None


def test_documents_over_the_limit_are_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"big.log is too large \(300 KB\); I read documents up to 200 KB"
    ):
        read_document(Upload("big.log", b"x" * 300 * KB), 200 * KB)
    with pytest.raises(ValidationError, match=r"The text of long\.pdf is too long"):
        read_document(Upload("long.pdf", make_pdf(*["word " * 200] * 5)), 2 * KB)


def test_a_pdf_becomes_its_text_under_its_name() -> None:
    document = read_document(Upload("report.pdf", make_pdf("First page", "Second page")), 200 * KB)
    assert ("report.pdf", "First page\n\nSecond page") == (document.name, document.text)
    assert document.as_message_part().startswith('<document name="report.pdf">\nFirst page')


def test_broken_and_empty_pdfs_are_refused_in_one_sentence() -> None:
    with pytest.raises(ValidationError, match="looks damaged"):
        read_document(Upload("broken.pdf", b"%PDF-1.4\nnothing else"), 200 * KB)
    with pytest.raises(ValidationError, match=r"I found no text in scan\.pdf"):
        read_document(Upload("scan.pdf", make_pdf("")), 200 * KB)
