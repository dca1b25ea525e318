"""Chat: a channel's conversation with the model, answered as a stream.

Owns the conversation service (context under a token budget, one answer at a time per conversation,
stop / regenerate / reset) and token counting. Uses credits (to pay) and display (to show).
"""

from bot.chat.conversations import (
    AnswerResult,
    ChatClient,
    ChatLimits,
    ChatRequest,
    ConversationService,
    View,
)
from bot.chat.tokens import TokenCounter, estimate_tokens

__all__ = [
    "AnswerResult",
    "ChatClient",
    "ChatLimits",
    "ChatRequest",
    "ConversationService",
    "TokenCounter",
    "View",
    "estimate_tokens",
]
