"""Text recognition for scanned PDF pages: pypdfium2 renders the page, RapidOCR reads it, offline.

RapidOCR (`rapidocr`, Apache-2.0) ships its PP-OCRv6 detection and recognition ONNX models inside the wheel
(models and their licences: `rapidocr/models/`, `MODEL_LICENSES.md`) and runs them on onnxruntime, so nothing
is downloaded at run time. The angle classifier is off: it turned upright lines upside down in our tests, and
scans arrive upright.

PDFium is not thread-safe, and `make dev` runs workers as threads (and serves page images in the same
process): every PDFium call holds `PDFIUM_LOCK`, this module's and the page viewer's alike.
The engine is built once per process (about 1 s) and shared under `_OCR_LOCK`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, Final

__all__ = ["PDFIUM_LOCK", "recognise_image", "recognise_pdf_pages", "render_pdf_page"]

PDFIUM_LOCK: Final = threading.Lock()
_PDFIUM_LOCK: Final = PDFIUM_LOCK
_OCR_LOCK: Final = threading.Lock()
MAX_PIXELS: Final = 40_000_000
"""A page rendered larger than this (a poster, a hostile page size) is rendered at a lower resolution."""


class OcrDeadline(Exception):
    """The job's OCR time budget ran out."""


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "warning", "Global.use_cls": False})


def render_pdf_page(document: Any, index: int, dpi: int) -> Any:
    """Page `index` (0-based) of an open pypdfium2 document as a PIL image; the caller holds `_PDFIUM_LOCK`."""
    page = document[index]
    try:
        width, height = page.get_size()
        scale = dpi / 72
        if width * height * scale * scale > MAX_PIXELS:
            scale = math.sqrt(MAX_PIXELS / max(width * height, 1.0))
        return page.render(scale=scale, grayscale=True).to_pil()
    finally:
        page.close()


def recognise_image(image: Any) -> str:
    """The text of an image, line by line in reading order."""
    import numpy as np

    cropped = _content_only(image)
    if cropped is None:
        return ""
    array = np.asarray(cropped.convert("RGB"))
    with _OCR_LOCK:
        result = _engine()(array)
    boxes, texts = getattr(result, "boxes", None), getattr(result, "txts", None)
    if boxes is None or not texts:
        return ""
    return _reading_order([(box, text) for box, text in zip(boxes, texts, strict=False) if text.strip()])


def _content_only(image: Any) -> Any:
    """The image cropped to its ink (plus a margin), or None for a blank page.

    The detector sees the image scaled to at most 2,000 pixels a side: on a whole 300-dpi page, a short line
    of 10-point text shrinks below what it finds. Without the margins the text keeps its size (and there are
    fewer pixels to look at)."""
    from PIL import ImageOps

    gray = image.convert("L")
    box = ImageOps.invert(gray).point(lambda value: 255 if value > _INK else 0).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    return gray.crop(
        (
            max(left - _MARGIN, 0),
            max(top - _MARGIN, 0),
            min(right + _MARGIN, gray.width),
            min(bottom + _MARGIN, gray.height),
        )
    )


_INK: Final = 64
"""Darker than this (0-255, inverted) is ink; lighter specks are scanner noise."""
_MARGIN: Final = 24


def _reading_order(items: list[tuple[Any, str]]) -> str:
    """Group boxes into lines (vertical centres within half a line height), each line left to right."""
    if not items:
        return ""
    placed = []
    for box, text in items:
        ys = [float(point[1]) for point in box]
        xs = [float(point[0]) for point in box]
        placed.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), text))
    placed.sort()
    heights = sorted(height for _, height, _, _ in placed)
    tolerance = max(heights[len(heights) // 2] / 2, 1.0)
    lines: list[list[tuple[float, str]]] = []
    last_centre = None
    for centre, _, left, text in placed:
        if last_centre is None or centre - last_centre > tolerance:
            lines.append([])
        lines[-1].append((left, text))
        last_centre = centre
    return "\n".join(" ".join(text for _, text in sorted(line)) for line in lines)


def recognise_pdf_pages(
    data: bytes,
    numbers: Iterable[int],
    *,
    dpi: int,
    deadline: float | None,
    progress: Callable[[int], None] | None = None,
) -> dict[int, str]:
    """OCR the given 1-based pages. Raises `OcrDeadline` past `deadline` (time.monotonic()).

    A page PDFium cannot render gives no text (the rest of the document still counts)."""
    import pypdfium2 as pdfium

    wanted = list(numbers)
    texts: dict[int, str] = {}
    with _PDFIUM_LOCK:
        document = pdfium.PdfDocument(data)
    try:
        for done, number in enumerate(wanted, start=1):
            if deadline is not None and time.monotonic() > deadline:
                raise OcrDeadline(f"stopped after {done - 1} of {len(wanted)} pages")
            try:
                with _PDFIUM_LOCK:
                    image = render_pdf_page(document, number - 1, dpi)
            except pdfium.PdfiumError:
                texts[number] = ""
            else:
                texts[number] = recognise_image(image)
            if progress is not None:
                progress(done)
    finally:
        with _PDFIUM_LOCK:
            document.close()
    return texts
