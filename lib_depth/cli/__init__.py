"""The command line (`python -m lib_depth`): one module per command, the parser built from the field table."""
