"""The stock-Prefect baseline's flow and runner: `python -m benchmarks.stock_flow LIMIT QUERY_SECONDS`.

A trivial flow with 7 trivial tasks shaped like process-order (one, then five concurrently,
then one), served by plain `prefect.serve()`: one `python -m prefect.engine` process per run.
"""

from __future__ import annotations

import sys

from prefect import flow, serve, task
from prefect.deployments.runner import EntrypointType


@task
def step(name: str, x: int) -> int:
    return x + 1


@flow(name="stock-trivial")
def trivial(x: int = 0) -> int:
    first = step("first", x)
    middle = [step.submit(name, first) for name in ("a", "b", "c", "d", "e")]
    return step("last", sum(f.result() for f in middle))


def main() -> None:
    # run as `-m`, this module is __main__: deploy the flow object of the importable module instead
    from benchmarks.stock_flow import trivial as flow_obj

    limit, query_seconds = int(sys.argv[1]), float(sys.argv[2])
    serve(flow_obj.to_deployment(name="stock", entrypoint_type=EntrypointType.MODULE_PATH),  # type: ignore[arg-type]
          limit=limit, query_seconds=query_seconds, pause_on_shutdown=False, print_starting_message=False)


if __name__ == "__main__":
    main()
