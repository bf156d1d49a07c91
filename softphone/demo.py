"""``softphone demo``: the sipsec demonstration.

Today this is the terminal walk-through of what the SIP core builds; the embedded demo network
(registrar, two proxies, a second user) and the GUI side-by-side arrive with later issues.
"""

from __future__ import annotations

import sys

COMING = """\
Coming next in the demo:
  - an embedded network on loopback: a registrar, two proxies and bob's phone;
  - alice calls bob twice: once over sips: (every proxy can read the call setup and the SRTP
    keys), once over sipsec: (the proxies see a CONNECT and then only opaque bytes);
  - a "what the proxies see" view, the trust dialog, and the safety number both phones show.
"""


def run_demo(*, gui: bool = False) -> int:
    """Run the demo; returns the process exit status."""
    if gui:
        print("softphone demo --gui: the GUI demo is not yet available.", file=sys.stderr)
        print(COMING, file=sys.stderr)
        return 2
    print("Softphone terminal demo (preview)\n")
    print(COMING)
    return 0
