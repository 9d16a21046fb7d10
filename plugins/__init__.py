"""First-party plugins, installed as ``disentangle_plugins``.

Each module is registered through the ``disentangle`` entry-point group, exactly as a
third-party plugin would be.
"""
