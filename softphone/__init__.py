"""Softphone: a SIP user agent whose security you can see.

``softphone`` is the engine (no Qt); ``ui`` is the PySide6 GUI over it.
"""

__version__ = "0.1.0"
