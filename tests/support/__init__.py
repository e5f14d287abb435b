"""Test helpers shared across test packages (fake upstream servers and the like)."""
