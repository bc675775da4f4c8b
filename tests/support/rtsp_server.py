#!/usr/bin/python3
"""Minimal RTSP test server for `tests/it/rtsp_live.rs` (GStreamer's GstRtspServer).

Usage: /usr/bin/python3 rtsp_server.py PORT FILE.mp4 [clean|garbage]

Serves FILE.mp4's H.264 track, unchanged, at rtsp://127.0.0.1:PORT/scene. Each client gets its
own pipeline starting at the beginning of the file, paced in real time. `garbage` corrupts
random bytes of the H.264 byte stream (GStreamer's `breakmydata`) before RTP packetisation,
so the client sees broken NAL units, slices and headers. Prints `READY <url>` once listening;
exit code 3 when GStreamer's Python bindings are missing (the test reports a SKIP).
Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,bad}.
"""
import sys

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
except (ImportError, ValueError) as e:
    print(f"MISSING {e}", flush=True)
    sys.exit(3)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    port, path = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "clean"
    Gst.init(None)
    loc = path.replace("\\", "\\\\").replace('"', '\\"')
    head = f'filesrc location="{loc}" ! qtdemux ! h264parse'
    if mode == "garbage":
        # Byte-stream framing so corrupted bytes hit NAL headers and slice data, not MP4
        # length prefixes; skip the first 2 kB so the stream starts decodable.
        head += (
            " ! video/x-h264,stream-format=byte-stream,alignment=au"
            " ! breakmydata probability=0.000005 seed=7 skip=2000"
        )
    elif mode != "clean":
        print(f"unknown mode {mode}", file=sys.stderr)
        sys.exit(2)
    launch = f"( {head} ! rtph264pay name=pay0 config-interval=1 pt=96 )"
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(False)
    server.get_mount_points().add_factory("/scene", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {port}", file=sys.stderr)
        sys.exit(1)
    print(f"READY rtsp://127.0.0.1:{port}/scene", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
