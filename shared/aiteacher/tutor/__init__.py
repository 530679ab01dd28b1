"""The AI tutor: guardrails, sessions, the hint ladder and learning-state summaries."""
