"""A small user project for pytest-convcheck: one sound model, three with bugs."""
