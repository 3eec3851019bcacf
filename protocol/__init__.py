"""Tadamun wire protocol (sans-IO)."""
