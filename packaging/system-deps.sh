#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when they are missing and we are root.
# Not root: lists what is missing and carries on (the tests that need a missing peer then fail
# under CI=true and skip, loudly, elsewhere).
#   system-deps.sh test   packages the test suite needs (Qt offscreen, later the interop peers)
#   system-deps.sh demo   packages the GUI demo needs (Qt on X11)
set -euo pipefail
group=${1:?usage: system-deps.sh test|demo}

# Qt offscreen (measured in a Debian 12 minbase chroot, see ARCHITECTURE.md); fontconfig pulls
# a font, without which screenshots show boxes.
qt_offscreen="libgl1 libegl1 libxkbcommon0 libglib2.0-0 libfontconfig1 libdbus-1-3"
qt_x11="xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxkbcommon-x11-0"
# Real peers for tests/interop (filled in as the issues that use them land).
interop="openssl kamailio kamailio-tls-modules baresip baresip-core linphone-cli"
# Packaging checks (tests/packaging): appstreamcli validates the AppStream metainfo,
# desktop-file-validate the .desktop file, binutils gives PyInstaller its objdump.
packaging="appstream desktop-file-utils binutils"
# Capture and audio (tests/interop/test_capture.py, tests/media/test_devices.py): tshark/dumpcap
# read the call off lo; sounddevice needs libportaudio2, which reaches a headless pulseaudio
# (null sink) through the ALSA pulse plugin of libasound2-plugins (Debian's PortAudio 19.6 has
# no native PulseAudio host API).
capture_audio="tshark sox libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils"

case "$group" in
  test) wanted="$qt_offscreen $interop $packaging $capture_audio" ;;
  demo) wanted="$qt_offscreen $qt_x11" ;;
  *) echo "system-deps.sh: unknown group '$group'" >&2; exit 2 ;;
esac

command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian system; install the equivalents of: $wanted" >&2; exit 0; }

missing=""
for pkg in $wanted; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  echo "system-deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  # tshark's "may non-root users capture?" question must not block an unattended install.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "system-deps: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
fi
