"""MiniToolAI Bot: the core. Imports no platform library and no storage backend."""
