"""What the GUI demo needs from the engine, through the façade (``ui/`` imports
``softphone.ua`` only, ARCHITECTURE.md): the embedded demo network, what each proxy observed,
and the text helpers the terminal demo uses for the same report."""

from softphone.demo_ladder import mask_crypto_line, proxy_report, short_first_line, slice_view
from softphone.demo_network import DemoNetwork
from softphone.media.tone import LevelMeter, ToneSource
from softphone.server.observe import ProxyView, SipSeen, TunnelOpened
from softphone.sip.message import Request, Response

__all__ = [
    "DemoNetwork",
    "LevelMeter",
    "ProxyView",
    "Request",
    "Response",
    "SipSeen",
    "ToneSource",
    "TunnelOpened",
    "mask_crypto_line",
    "proxy_report",
    "short_first_line",
    "slice_view",
]
