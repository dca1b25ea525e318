"""Access: who may use the bot and where (the owner's lists, run-time overrides, channel switches).

Uses no other capability; adapters ask it once per request, before anything else happens.
"""
