"""Configuration the plugin read at init (module state, private to this plugin)."""

greeting = "Hello"
punctuation = "!"
