"""Exam generation (an RQ job) and exam access rules."""
