"""QR images for redemption codes: PNG bytes, made in pure Python (qrcode writing through
pypng), large enough for a shop's phone to scan off another phone's screen."""

from __future__ import annotations

import io

import qrcode
from qrcode.image.pure import PyPNGImage

BOX_PIXELS = 12
BORDER_BOXES = 4


def qr_png(text: str) -> bytes:
    image = qrcode.make(
        text,
        image_factory=PyPNGImage,
        box_size=BOX_PIXELS,
        border=BORDER_BOXES,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
    )
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def qr_modules(text: str) -> list[list[bool]]:
    """The code's modules (True: dark), border included, for checking an image against."""
    code = qrcode.QRCode(
        box_size=BOX_PIXELS, border=BORDER_BOXES, error_correction=qrcode.constants.ERROR_CORRECT_M
    )
    code.add_data(text)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]
