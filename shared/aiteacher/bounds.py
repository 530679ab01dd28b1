"""Bounds shared by every request schema, so no input can reach the database or a loop unbounded.

Ids are PostgreSQL `integer` columns: a larger number could never match and would overflow the
driver (a 500), so the schema refuses it (422). Offsets and counts stop far beyond any real use.
"""

MAX_ID = 2_147_483_647
MAX_OFFSET = 1_000_000
MAX_KEY_CHARS = 64  # uuid-style string ids in paths
