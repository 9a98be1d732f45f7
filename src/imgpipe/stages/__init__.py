"""The three stages of the pipeline, one module each, free of Lambda event shapes.

Each stage takes typed input, an `ObjectStore` and its configuration, and returns a
typed result. Only `resize` imports Pillow; `validate` and `store` run without it.
"""
