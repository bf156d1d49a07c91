"""The softphone's own icons and ringtone, installed as the package ``softphone.resources``.

Read them with :mod:`importlib.resources` (works from a checkout, a wheel and the PyInstaller
bundle)::

    from importlib.resources import as_file, files
    ring = files("softphone.resources") / "sounds" / "ringtone.wav"
    icon = files("softphone.resources") / "icons/hicolor/256x256/apps/org.softphone.Softphone.png"

Made by ``packaging/make_icons.py`` (from the hand-drawn SVG) and
``packaging/make_ringtone.py``; see ``docs/packaging.md``.
"""

APP_ID = "org.softphone.Softphone"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
RINGTONE = "sounds/ringtone.wav"


def icon_name(size: int | None = None) -> str:
    """The icon's path inside the package: PNG of ``size`` pixels, or the SVG for ``None``."""
    if size is None:
        return f"icons/hicolor/scalable/apps/{APP_ID}.svg"
    if size not in ICON_SIZES:
        raise ValueError(f"no {size}px icon; sizes: {ICON_SIZES}")
    return f"icons/hicolor/{size}x{size}/apps/{APP_ID}.png"
