"""Ingestion: turning uploaded lecture PDFs into page-numbered text (`pdf`) and page-aware chunks (`chunking`).

Submodules are imported on use; nothing heavy (pypdf) is imported at package import time.
"""
