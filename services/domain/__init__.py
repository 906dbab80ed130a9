"""Heron's shared vocabulary: value types, enums, events and the event bus (no I/O, no Qt)."""
