"""File tools without TensorFlow: `convert`, `diff` and `verify` checkpoints on disk."""
