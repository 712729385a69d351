"""Run the Stripe stand-in as a process: ``python -m orderpipe.stripe_api.standin --port 12111 --seed``.

Prints one line ``stripe stand-in listening on http://HOST:PORT`` (flushed) once it accepts
requests, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from orderpipe.stripe_api.standin.samples import seed_store
from orderpipe.stripe_api.standin.server import make_standin_server
from orderpipe.stripe_api.standin.store import DEFAULT_API_KEY, StandinStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderpipe.stripe_api.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--seed", action="store_true", help="load the sample paid orders")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY,
                        help="key accepted besides any sk_test_... key (default: %(default)s)")
    parser.add_argument("--strict-key", action="store_true", help="accept only --api-key")
    args = parser.parse_args(argv)

    store = StandinStore(api_key=args.api_key, accept_any_test_key=not args.strict_key)
    if args.seed:
        seed_store(store)
    server = make_standin_server(store, args.host, args.port)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"stripe stand-in listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
