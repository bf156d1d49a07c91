"""Interop tests against real, independently written SIP peers (Kamailio, ...) on loopback."""
