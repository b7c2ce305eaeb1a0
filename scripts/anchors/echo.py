"""A UDP echo server, the classic Python loop: recvfrom() one datagram, sendto() it back.

The anchor `deno task bench`'s "reflector capacity, closed loop" section compares `udp serve`
with: what the tutorial server does, in the language tutorials use.

    python3 echo.py [PORT] [HOST]     (default port 0, host 127.0.0.1)

Prints the port it is bound to on its first line, then echoes until SIGINT or SIGTERM (exit 0).
"""

import signal
import socket
import sys


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    print(sock.getsockname()[1], flush=True)
    try:
        while True:
            data, peer = sock.recvfrom(65536)
            try:
                sock.sendto(data, peer)
            except OSError:
                pass  # the peer's ICMP error, a full buffer: that datagram is dropped
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


main()
