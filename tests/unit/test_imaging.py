"""imaging: format by content, pixel limit before decoding, truncation, EXIF, clean derivatives.
Every image is generated here with Pillow; nothing is mocked."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageFile, ImageOps, TiffImagePlugin

from fieldsync.errors import MediaTooManyPixels, MediaUndecodable, MediaUnsupportedType
from fieldsync.imaging import ImageInfo, hamming, probe, render_derivatives
from fieldsync.imaging.jpeg import strip_metadata
from fieldsync.imaging.likeness import best_likeness
from fieldsync.imaging.process import process

LIMIT = 64_000_000
Rational = TiffImagePlugin.IFDRational


def noisy(size: tuple[int, int]) -> Image.Image:
    """A photo-like picture: a gradient, noise and detail in three channels."""
    return Image.merge("RGB", (Image.linear_gradient("L").resize(size), Image.effect_noise(size, 40),
                               Image.effect_mandelbrot(size, (-2, -1.5, 1, 1.5), 60)))


def quadrants(size: tuple[int, int] = (800, 600)) -> Image.Image:
    """Four flat colours, so any rotation or flip is visible in the corners."""
    width, height = size
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height // 2))
    image.paste((0, 255, 0), (width // 2, 0, width, height // 2))
    image.paste((255, 255, 0), (0, height // 2, width // 2, height))
    return image


def exif_block(
    *,
    orientation: int | None = None,
    taken: str | None = "2024:05:01 10:20:30",
    offset: str | None = "+08:00",
    gps: tuple[str, tuple[float, float, float], str, tuple[float, float, float]] | None = (
        "N",
        (36, 12, 30.5),
        "E",
        (113, 6, 0),
    ),
    make: str = "HUAWEI\x00",
    model: str = "Mate 60 Pro",
) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    exif[0x010F] = make
    exif[0x0110] = model
    details: dict[int, object] = {}
    if taken is not None:
        details[0x9003] = taken
    if offset is not None:
        details[0x9011] = offset
    exif[0x8769] = details
    if gps is not None:
        lat_ref, lat, lon_ref, lon = gps
        exif[0x8825] = {
            1: lat_ref,
            2: tuple(Rational(round(part * 100), 100) for part in lat),
            3: lon_ref,
            4: tuple(Rational(round(part * 100), 100) for part in lon),
        }
    return exif.tobytes()


def save(tmp_path: Path, image: Image.Image, name: str, fmt: str, **params: object) -> Path:
    path = tmp_path / name
    image.save(path, fmt, **params)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width``×``height`` (a decompression bomb's header)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def jpeg_markers(data: bytes) -> list[int]:
    """The segment markers of a JPEG up to the first scan."""
    assert data[:2] == b"\xff\xd8"
    markers, index = [], 2
    while index < len(data):
        assert data[index] == 0xFF
        marker = data[index + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    return markers


def assert_clean_jpeg(data: bytes) -> Image.Image:
    assert set(jpeg_markers(data)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDD, 0xDA}, [hex(m) for m in jpeg_markers(data)]
    for needle in (b"Exif", b"GPS", b"xmpmeta", b"ICC_PROFILE", b"secret"):
        assert needle not in data
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert dict(image.getexif()) == {}
    assert not {"exif", "xmp", "icc_profile", "comment", "XML:com.adobe.xmp"} & set(image.info)
    return image


def corner_colours(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = image.convert("RGB")
    width, height = rgb.size
    points = [(width // 10, height // 10), (width * 9 // 10, height // 10), (width // 10, height * 9 // 10),
              (width * 9 // 10, height * 9 // 10)]
    return [tuple(round(channel / 64) for channel in rgb.getpixel(point)) for point in points]  # type: ignore[union-attr]


# --- probe: what it is ------------------------------------------------------------------------


def test_jpeg_probe_reports_size_orientation_and_exif(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants(), "photo.jpg", "JPEG", exif=exif_block(orientation=6))

    info = probe(path, max_pixels=LIMIT)

    assert info.dhash is not None and info.thumbprint is not None
    assert info == ImageInfo(
        format="jpeg",
        mime_type="image/jpeg",
        width=800,
        height=600,
        orientation=6,
        taken_at=dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        lat=pytest.approx(36 + 12 / 60 + 30.5 / 3600),  # type: ignore[arg-type]
        lon=pytest.approx(113.1),  # type: ignore[arg-type]
        make="HUAWEI",
        model="Mate 60 Pro",
        dhash=info.dhash,
        thumbprint=info.thumbprint,
    )
    assert info.display_size == (600, 800)


def test_taken_at_without_an_offset_is_naive_camera_local_time(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants(), "photo.jpg", "JPEG", exif=exif_block(offset=None))

    taken_at = probe(path, max_pixels=LIMIT).taken_at

    assert taken_at == dt.datetime(2024, 5, 1, 10, 20, 30)
    assert taken_at is not None and taken_at.tzinfo is None


def test_southern_and_western_positions_are_negative(tmp_path: Path) -> None:
    gps = ("S", (33.0, 52.0, 4.0), "W", (151.0, 12.0, 36.0))
    path = save(tmp_path, quadrants(), "photo.jpg", "JPEG", exif=exif_block(gps=gps))

    info = probe(path, max_pixels=LIMIT)

    assert info.lat == pytest.approx(-(33 + 52 / 60 + 4 / 3600))
    assert info.lon == pytest.approx(-(151 + 12 / 60 + 36 / 3600))


TEN_AM_BEIJING = dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


@pytest.mark.parametrize(
    ("exif", "taken_at", "has_position", "make"),
    [
        (exif_block(gps=None, taken=None, offset=None, make="", model=""), None, False, None),
        (exif_block(gps=("X", (36, 0, 0), "E", (113, 0, 0))), TEN_AM_BEIJING, False, "HUAWEI"),
        (exif_block(gps=("N", (136, 0, 0), "E", (113, 0, 0))), TEN_AM_BEIJING, False, "HUAWEI"),
        (exif_block(taken="    :  :     :  :  "), None, True, "HUAWEI"),
        (exif_block(offset="+99:00"), dt.datetime(2024, 5, 1, 10, 20, 30), True, "HUAWEI"),
        (exif_block(taken="2024:02:30 10:00:00"), None, True, "HUAWEI"),
        (exif_block(make="\x01\x02  "), TEN_AM_BEIJING, True, None),
    ],
    ids=["none", "bad-ref", "out-of-range", "blank-date", "bad-offset", "impossible-date", "control-chars"],
)
def test_missing_or_nonsense_exif_values_are_none_not_errors(
    tmp_path: Path, exif: bytes, taken_at: dt.datetime | None, has_position: bool, make: str | None
) -> None:
    info = probe(save(tmp_path, quadrants(), "photo.jpg", "JPEG", exif=exif), max_pixels=LIMIT)

    assert info.width == 800
    assert info.taken_at == taken_at
    assert (info.taken_at.tzinfo if info.taken_at else None) == (taken_at.tzinfo if taken_at else None)
    assert (info.lat is not None, info.lon is not None) == (has_position, has_position)
    assert info.make == make


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_a_corrupt_exif_block_does_not_reject_the_photo(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants(), "photo.jpg", "JPEG", exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff garbage")

    info = probe(path, max_pixels=LIMIT)

    assert (info.format, info.orientation, info.taken_at, info.lat) == ("jpeg", 1, None, None)


@pytest.mark.parametrize(
    ("fmt", "name", "mime"),
    [("PNG", "png", "image/png"), ("WEBP", "webp", "image/webp"), ("HEIF", "heic", "image/heic")],
)
def test_png_webp_and_heic_are_recognised_with_their_exif(tmp_path: Path, fmt: str, name: str, mime: str) -> None:
    path = save(tmp_path, quadrants((640, 480)), f"image.{name}", fmt, exif=exif_block())

    info = probe(path, max_pixels=LIMIT)

    assert (info.format, info.mime_type) == (name, mime)
    assert (info.width, info.height) == (640, 480)
    assert info.make == "HUAWEI"
    assert info.lat == pytest.approx(36 + 12 / 60 + 30.5 / 3600)


def test_the_content_decides_not_the_file_name(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants(), "really-a-png.jpg", "PNG")

    assert probe(path, max_pixels=LIMIT).mime_type == "image/png"


@pytest.mark.parametrize(
    "content",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>',
        "隐患照片：矿井入口\n".encode(),
        b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
        b"",
        os.urandom(4096),
    ],
    ids=["svg", "text", "pdf", "empty", "random"],
)
def test_non_images_are_unsupported(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)

    with pytest.raises(MediaUnsupportedType) as raised:
        probe(path, max_pixels=LIMIT)
    assert raised.value.code == "media.unsupported_type"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "AVIF"])
def test_real_images_of_other_formats_are_unsupported(tmp_path: Path, fmt: str) -> None:
    path = save(tmp_path, quadrants((64, 48)), "image.jpg", fmt)

    with pytest.raises(MediaUnsupportedType):
        probe(path, max_pixels=LIMIT)


# --- probe: broken and oversized --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_truncated_images_are_undecodable(tmp_path: Path, fmt: str) -> None:
    noisy = Image.effect_noise((400, 300), 80).convert("RGB")
    whole = save(tmp_path, noisy, "whole", fmt).read_bytes()
    path = tmp_path / "truncated"
    path.write_bytes(whole[: len(whole) * 2 // 3])

    with pytest.raises(MediaUndecodable) as raised:
        probe(path, max_pixels=LIMIT)
    assert raised.value.code == "media.undecodable"


def test_a_jpeg_cut_inside_its_header_is_undecodable_not_unsupported(tmp_path: Path) -> None:
    whole = save(tmp_path, quadrants(), "whole.jpg", "JPEG").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[:40])

    with pytest.raises(MediaUndecodable):
        probe(path, max_pixels=LIMIT)


def test_corrupt_png_data_is_undecodable(tmp_path: Path) -> None:
    data = bytearray(save(tmp_path, Image.effect_noise((200, 200), 50), "ok.png", "PNG").read_bytes())
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 60] = os.urandom(50)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))

    with pytest.raises(MediaUndecodable):
        probe(path, max_pixels=LIMIT)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (10_000, 10_000), (8001, 8000)])
def test_png_bombs_are_refused_from_the_header_without_decoding(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(width, height))
    started = time.perf_counter()

    with pytest.raises(MediaTooManyPixels) as raised:
        probe(path, max_pixels=LIMIT)

    assert raised.value.code == "media.too_many_pixels"
    assert time.perf_counter() - started < 1.0


def test_the_pixel_limit_is_the_callers(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants((100, 100)), "small.png", "PNG")

    assert probe(path, max_pixels=10_000).width == 100
    with pytest.raises(MediaTooManyPixels):
        probe(path, max_pixels=9_999)


# --- derivatives ------------------------------------------------------------------------------


def test_derivatives_fit_their_boxes_and_carry_no_metadata(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = save(
        tmp_path,
        quadrants((4000, 3000)),
        "photo.jpg",
        "JPEG",
        exif=exif_block(),
        icc_profile=srgb,
        comment=b"secret comment",
        xmp=b"<x:xmpmeta>secret GPS</x:xmpmeta>",
    )

    preview, thumbnail = render_derivatives(path)

    assert assert_clean_jpeg(preview).size == (1280, 960)
    assert assert_clean_jpeg(thumbnail).size == (320, 240)
    assert corner_colours(Image.open(io.BytesIO(preview))) == corner_colours(quadrants())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_derivatives_apply_every_exif_orientation(tmp_path: Path, orientation: int) -> None:
    path = save(tmp_path, quadrants(), "photo.jpg", "JPEG", exif=exif_block(orientation=orientation))
    expected = ImageOps.exif_transpose(Image.open(path))

    preview, thumbnail = render_derivatives(path)

    shown = Image.open(io.BytesIO(preview))
    assert shown.size == expected.size
    assert corner_colours(shown) == corner_colours(expected)
    assert Image.open(io.BytesIO(thumbnail)).size == tuple(side * 320 // 800 for side in expected.size)


def test_draft_decoding_gives_the_same_picture(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants((4000, 3000)), "photo.jpg", "JPEG", quality=90)

    fast = Image.open(io.BytesIO(render_derivatives(path).preview))
    full = Image.open(io.BytesIO(render_derivatives(path, draft=False).preview))

    assert fast.size == full.size == (1280, 960)
    assert corner_colours(fast) == corner_colours(full)


@pytest.mark.parametrize(
    ("image", "fmt", "params"),
    [
        (Image.new("RGBA", (500, 400), (255, 0, 0, 0)), "PNG", {}),
        (Image.new("LA", (500, 400), (0, 0)), "PNG", {}),
        (quadrants((500, 400)).convert("P", palette=Image.Palette.ADAPTIVE), "PNG", {"transparency": 0}),
        (Image.new("I;16", (500, 400), 65535), "PNG", {}),
        (Image.new("1", (500, 400), 1), "PNG", {}),
        (Image.new("CMYK", (500, 400), (0, 0, 0, 0)), "JPEG", {}),
        (Image.new("L", (500, 400), 255), "JPEG", {}),
        (Image.new("RGBA", (500, 400), (255, 255, 255, 128)), "WEBP", {}),
        (quadrants((500, 400)), "HEIF", {"exif": exif_block(orientation=8)}),
    ],
    ids=["transparent-rgba", "transparent-la", "palette-transparency", "16-bit-grey", "bilevel", "cmyk", "grey",
         "webp-alpha", "heic"],
)
def test_every_pixel_mode_becomes_a_clean_rgb_jpeg(
    tmp_path: Path, image: Image.Image, fmt: str, params: dict[str, object]
) -> None:
    path = save(tmp_path, image, "image", fmt, **params)

    preview, thumbnail = render_derivatives(path)

    shown = assert_clean_jpeg(preview)
    assert shown.mode == "RGB"
    assert max(shown.size) == 500 or fmt == "HEIF"
    assert max(assert_clean_jpeg(thumbnail).size) == 320
    if image.mode in ("RGBA", "LA") and fmt == "PNG":
        assert shown.convert("RGB").getpixel((250, 200)) == (255, 255, 255)


def test_small_images_are_not_enlarged(tmp_path: Path) -> None:
    path = save(tmp_path, quadrants((200, 100)), "small.png", "PNG")

    preview, thumbnail = render_derivatives(path)

    assert Image.open(io.BytesIO(preview)).size == (200, 100)
    assert Image.open(io.BytesIO(thumbnail)).size == (200, 100)


def test_derivatives_of_broken_or_foreign_files_raise_catalogue_errors(tmp_path: Path) -> None:
    text = tmp_path / "note.jpg"
    text.write_text("not a photo")
    whole = save(tmp_path, Image.effect_noise((400, 300), 80).convert("RGB"), "whole.jpg", "JPEG").read_bytes()
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(MediaUnsupportedType):
        render_derivatives(text)
    with pytest.raises(MediaUndecodable):
        render_derivatives(truncated)


# --- process: one decode for everything ----------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[int, int]]]:
    """Each pixel decode (``ImageFile.load`` of a file not yet loaded): file name, decoded size."""
    seen: list[tuple[str, tuple[int, int]]] = []
    original = ImageFile.ImageFile.load

    def counting(self: ImageFile.ImageFile):  # type: ignore[no-untyped-def]
        if not self.tile:
            return original(self)
        loaded = original(self)
        seen.append((Path(getattr(self, "filename", "") or "?").name, self.size))
        return loaded

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return seen


def test_process_decodes_once_and_agrees_with_probe_and_render(
    tmp_path: Path, decodes: list[tuple[str, tuple[int, int]]]
) -> None:
    path = save(tmp_path, noisy((2400, 1800)), "photo.jpg", "JPEG", quality=88, exif=exif_block(orientation=6))

    checked = process(path, max_pixels=LIMIT)

    assert decodes == [("photo.jpg", (2400, 1800))], "validation, EXIF, fingerprints and both derivatives from one decode"
    probed = probe(path, max_pixels=LIMIT)
    assert checked.info == dataclasses.replace(probed, dhash=checked.info.dhash, thumbprint=checked.info.thumbprint)
    assert (checked.info.width, checked.info.height, checked.info.orientation) == (2400, 1800, 6)
    assert checked.info.dhash is not None and checked.info.thumbprint is not None
    assert probed.dhash is not None and probed.thumbprint is not None
    assert hamming(checked.info.dhash, probed.dhash) <= 4
    assert best_likeness([([checked.info.thumbprint], [probed.thumbprint])])[0] >= 0.98
    assert checked.derivatives is not None
    assert assert_clean_jpeg(checked.derivatives.preview).size == (960, 1280)
    assert assert_clean_jpeg(checked.derivatives.thumbnail).size == (240, 320)


def test_an_upright_photo_that_fits_keeps_its_own_scan_as_its_preview(
    tmp_path: Path, decodes: list[tuple[str, tuple[int, int]]]
) -> None:
    """No new pixels: the original's scan, every metadata segment and what follows EOI removed;
    decoded only at the thumbnail's scale (to check it and for the thumbnail)."""
    path = save(tmp_path, noisy((1280, 960)), "phone.jpg", "JPEG", quality=85, exif=exif_block(),
                comment=b"secret comment", xmp=b"<x:xmpmeta>secret GPS</x:xmpmeta>")
    path.write_bytes(path.read_bytes() + b"\xff\xd8 a second picture, secret")

    checked = process(path, max_pixels=LIMIT)

    assert decodes == [("phone.jpg", (320, 240))]

    assert checked.derivatives is not None
    preview = checked.derivatives.preview
    shown = assert_clean_jpeg(preview)
    assert b"second picture" not in preview and preview.endswith(b"\xff\xd9")
    assert ImageChops.difference(shown.convert("RGB"), Image.open(path).convert("RGB")).getbbox() is None
    assert assert_clean_jpeg(checked.derivatives.thumbnail).size == (320, 240)


def _with_adobe_marker(data: bytes) -> bytes:
    segment = b"Adobe" + bytes([0, 100, 0, 0, 0, 0, 1])
    return data[:2] + b"\xff\xee" + (len(segment) + 2).to_bytes(2, "big") + segment + data[2:]


@pytest.mark.parametrize("layout", ["progressive", "adobe", "rotated", "too-big"])
def test_other_layouts_are_re_encoded_clean(tmp_path: Path, layout: str) -> None:
    size = (1600, 1200) if layout == "too-big" else (800, 600)
    params: dict[str, object] = {"quality": 85, "exif": exif_block(orientation=6 if layout == "rotated" else None)}
    if layout == "progressive":
        params["progressive"] = True
    path = save(tmp_path, quadrants(size), "photo.jpg", "JPEG", **params)
    if layout == "adobe":
        path.write_bytes(_with_adobe_marker(path.read_bytes()))
    if layout in ("progressive", "adobe"):
        assert strip_metadata(path.read_bytes()) is None

    checked = process(path, max_pixels=LIMIT)

    assert checked.derivatives is not None
    shown = assert_clean_jpeg(checked.derivatives.preview)
    assert 0xC0 in jpeg_markers(checked.derivatives.preview), "re-encoded as baseline"
    expected = ImageOps.exif_transpose(Image.open(path))
    assert corner_colours(shown) == corner_colours(expected.resize(shown.size))


def test_strip_refuses_what_is_not_a_whole_baseline_jpeg() -> None:
    buffer = io.BytesIO()
    quadrants((64, 48)).save(buffer, "JPEG")
    whole = buffer.getvalue()

    assert strip_metadata(whole) is not None
    assert strip_metadata(b"not a jpeg") is None
    assert strip_metadata(whole[: len(whole) - 2]) is None, "no end marker"
    assert strip_metadata(whole[:20]) is None


def test_twelve_megapixel_jpeg_timing_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = Image.linear_gradient("L").resize((4000, 3000))
    noise = Image.effect_noise((4000, 3000), 40)
    photo = Image.merge("RGB", (base, noise, Image.effect_mandelbrot((4000, 3000), (-2, -1.5, 1, 1.5), 80)))
    path = save(tmp_path, photo, "twelve.jpg", "JPEG", quality=90, exif=exif_block(orientation=6))

    started = time.perf_counter()
    info = probe(path, max_pixels=LIMIT)
    probed = time.perf_counter()
    preview, thumbnail = render_derivatives(path)
    rendered = time.perf_counter()

    assert info.display_size == (3000, 4000)
    assert Image.open(io.BytesIO(preview)).size == (960, 1280)
    with capsys.disabled():
        print(
            f"\n12 MP JPEG ({path.stat().st_size / 1e6:.1f} MB): probe {1000 * (probed - started):.0f} ms, "
            f"derivatives {1000 * (rendered - probed):.0f} ms ({len(preview) // 1024} KB + {len(thumbnail) // 1024} KB)"
        )
