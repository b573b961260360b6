"""Shared pytest wiring. Stand-in fixtures live next to the stand-ins (pytest plugins)."""
