"""Curriculum documents: uploads and bucket drops, ingestion jobs, tenant-scoped search."""
