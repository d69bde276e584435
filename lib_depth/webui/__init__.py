"""The WebUI glue: the only part of lib_depth that knows the WebUI.

Everything here may import the WebUI's `modules` and gradio, always lazily inside functions, so that
the package imports (and its pure parts test) without a WebUI. The engine (the rest of lib_depth)
never imports this package; tests/test_layout.py checks that on the engine's source.
"""
