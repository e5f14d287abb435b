"""Agent tasks (`/api/tasks`)."""
