"""opsrun's built-in modules (a plugin folder: plugin.toml, help/, modules.py)."""
