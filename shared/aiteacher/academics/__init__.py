"""Faculties, departments and semesters: the tenancy hierarchy."""
