"""The router: reads lines, parses both dialects, keeps order and read-your-writes, writes replies."""
