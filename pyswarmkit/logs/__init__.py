"""Task logs: the pure pieces (lines, files, the broker and sender cores)."""
