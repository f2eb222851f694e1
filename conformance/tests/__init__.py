"""The conformance tests: one module per feature area, one test per behaviour."""
