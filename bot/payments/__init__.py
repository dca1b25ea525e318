"""Payments: members top up their own credit with Telegram Stars, each payment credited exactly once.

Owns the signed invoice payloads, the pre-checkout check, crediting a paid invoice as one ledger
entry keyed by Telegram's charge id, refunds, and the purchase reports. Uses credits.
"""
