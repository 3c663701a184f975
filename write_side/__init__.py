"""The write side: validates commands, decides events, stores them durably, publishes them."""
