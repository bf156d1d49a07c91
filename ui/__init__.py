"""The desktop GUI (PySide6 through qasync). Imports the engine through ``softphone.ua`` only.

==================  ===========================================================
``app``             ``softphone gui``: QApplication, qasync loop, :class:`Phone`
``bridge``          engine events in, Qt signals out; the trust answerer
``presenters``      Qt-free: what every label and button says (UX.md)
``main_window``     accounts, registrar certificate, dialer, status log
``trust_dialog``    the certificate trust dialog, quiet and loud variants
==================  ===========================================================
"""
