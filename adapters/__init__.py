"""Platform adapters: translate platform events into core calls, and core replies into messages."""
