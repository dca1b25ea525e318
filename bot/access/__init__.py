"""Access: who may use the bot and where (the owner's lists, run-time overrides, channel switches), and how
fast (per-member rate limits in ``bot.access.rates``). Uses no other capability; adapters ask it first.
"""
