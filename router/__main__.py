"""python -m router: the router on its own, serving ZeroMQ clients (service mode).

Back-ends connect to it (`python -m write_side`, `python -m read_side`, as
many read replicas as you like); clients connect to CQRS_CLIENT_ENDPOINT.
"""
from common.lifeline import die_with_parent

if __name__ == "__main__":
    die_with_parent()
    from common import runtime

    runtime.keep_files_private()  # its ipc sockets, if any, are its user's alone
    from router.service_mode import main

    raise SystemExit(main())
