"""Plugins the sandbox tests run in real child processes, each with one behaviour."""
