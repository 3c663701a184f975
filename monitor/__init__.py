"""The monitor: a fourth process type that watches the node and serves what it sees.

It follows the event stream gap-free (common.subscription), asks the router for `stats`
once a second, and serves over HTTP `/metrics` (Prometheus) and a live page (Server-Sent
Events; its files are in monitor/static). Like the other process types it imports only
`common`, and the node does not notice whether it runs. See docs/monitor.md.
"""
