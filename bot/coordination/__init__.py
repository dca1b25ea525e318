"""Coordination: several bot processes on one database acting as one bot.

Owns this process's identity and heartbeat lease, and the takeover of what processes whose lease
expired left behind (their holds and image jobs). Uses credits and images.
"""
