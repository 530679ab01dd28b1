"""Zip-bomb guards for Office Open XML (.pptx, .docx) before python-pptx / python-docx read them.

An OOXML file is a zip. python-pptx and python-docx read its parts with `zipfile`, which stops reading a
member at its declared size (and fails the CRC check if the data goes on), so checking the declared sizes
in the central directory bounds the decompressed bytes for real. We also cap the number of members and the
compression ratio of large members. Their XML parsers do not resolve entities, so entity bombs do not expand.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final

from aiteacher.ingestion.errors import DocumentRejected
from aiteacher.ingestion.extractors import ExtractionLimits
from aiteacher.ingestion.extractors.units import NAMES
from aiteacher.ingestion.pdf import MB

MAX_RATIO: Final = 200
"""Deflate reaches about 10:1 on XML and about 1,000:1 on runs of one byte: a large member above this is a bomb."""
RATIO_CHECK_BYTES: Final = 10 * MB


def check_archive(data: bytes, kind: str, limits: ExtractionLimits) -> None:
    max_total = limits.max_decompressed_bytes
    max_entries = limits.max_zip_entries
    name = NAMES[kind]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise corrupt(kind) from exc
    if len(members) > max_entries:
        raise DocumentRejected(
            "too_large",
            f"The {name} has {len(members):,} parts, more than the {max_entries:,} allowed; it may be a zip bomb.",
        )
    declared = 0
    for member in members:
        declared += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if declared > max_total or (member.file_size > RATIO_CHECK_BYTES and ratio > MAX_RATIO):
            raise DocumentRejected(
                "too_large",
                f"The {name} expands to more than it should when unpacked (over "
                f"{max_total / MB:g} MB, or a part compressed {ratio:,.0f}:1); it may "
                "be a zip bomb.",
            )


def corrupt(kind: str) -> DocumentRejected:
    return DocumentRejected(
        "corrupt",
        f"The {NAMES[kind]} is damaged or incomplete and could not be read. It may "
        "have been cut off during upload: save it again and upload the new file.",
    )
