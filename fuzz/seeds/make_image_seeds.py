#!/usr/bin/env python3
"""Writes the tiny image seeds for the probe and render fuzz targets into fuzz/seeds/images/.

The files are committed (each well under 2 KB), so fuzzing needs no Pillow; rerun this script only to
change them: `python3 fuzz/seeds/make_image_seeds.py` (needs Pillow with WebP support).
Every supported format and the header features the core reads are represented: EXIF orientation,
CMYK, grey, alpha, palette transparency, 16-bit, progressive JPEG, animation; plus headers that claim
huge dimensions over a tiny body.
"""
import io
import os
import struct
import zlib

from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")


def gradient(mode, size=(12, 8)):
    image = Image.new("RGBA", size)
    for x in range(size[0]):
        for y in range(size[1]):
            image.putpixel((x, y), (x * 20 % 256, y * 30 % 256, (x + y) * 10 % 256, 128 + x * 10))
    return image.convert(mode)


def save(name, image, **options):
    buffer = io.BytesIO()
    image.save(buffer, **options)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(buffer.getvalue())


def exif_with_orientation(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width, height):
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def main():
    os.makedirs(OUT, exist_ok=True)
    save("rgb.jpg", gradient("RGB"), format="JPEG", quality=50)
    save("progressive.jpg", gradient("RGB"), format="JPEG", quality=50, progressive=True)
    save("grey.jpg", gradient("L"), format="JPEG", quality=50)
    save("cmyk.jpg", gradient("CMYK"), format="JPEG", quality=50)
    save("orientation6.jpg", gradient("RGB"), format="JPEG", quality=50, exif=exif_with_orientation(6))
    save("rgb.png", gradient("RGB"), format="PNG")
    save("rgba.png", gradient("RGBA"), format="PNG")
    save("grey-alpha.png", gradient("LA"), format="PNG")
    save("palette.png", gradient("P"), format="PNG", transparency=0)
    save("grey16.png", gradient("I;16"), format="PNG")
    save("orientation8.png", gradient("RGB"), format="PNG", exif=exif_with_orientation(8))
    frames = [gradient("RGB"), gradient("RGB").rotate(180)]
    save("animated.png", frames[0], format="PNG", save_all=True, append_images=frames[1:])
    save("still.gif", gradient("P"), format="GIF", transparency=0)
    save("animated.gif", frames[0], format="GIF", save_all=True, append_images=frames[1:], loop=0)
    save("lossy.webp", gradient("RGB"), format="WEBP", quality=50)
    save("lossless-alpha.webp", gradient("RGBA"), format="WEBP", lossless=True)
    save("exif.webp", gradient("RGB"), format="WEBP", quality=50, exif=exif_with_orientation(3))
    save("animated.webp", frames[0], format="WEBP", save_all=True, append_images=frames[1:], quality=50)
    save("rgb.tiff", gradient("RGB"), format="TIFF")
    save("rgba-deflate.tiff", gradient("RGBA"), format="TIFF", compression="tiff_adobe_deflate")
    save("rgb.bmp", gradient("RGB"), format="BMP")
    with open(os.path.join(OUT, "huge-65535.png"), "wb") as f:
        f.write(huge_png(65535, 65535))
    with open(os.path.join(OUT, "huge.gif"), "wb") as f:
        f.write(b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\0\0\0" + b"\x2c" + b"\0" * 9 + b"\x02\x02\x44\x01\0\x3b")


if __name__ == "__main__":
    main()
