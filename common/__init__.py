"""What every process of the node shares: config, wire codec, event records, time, logging."""
