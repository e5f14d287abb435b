"""Agent runtime pieces: outbound HTTP, provider clients and the agent loop."""
