"""Losses: one pure loss (or loss-side transform) per module, each with its own property test."""
