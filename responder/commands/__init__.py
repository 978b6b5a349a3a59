"""Commands of `responder` that live in their own module; responder/cli.py registers them."""
