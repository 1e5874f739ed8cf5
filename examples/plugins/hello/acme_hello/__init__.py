"""acme.hello: an example plugbay plugin."""
