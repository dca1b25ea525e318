"""Access: who may use the bot where, and how fast (per-member rate limits in ``bot.access.rates``).

Uses no other capability.
"""
