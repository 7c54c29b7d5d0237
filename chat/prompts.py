"""The prompt the LLM answers from: persona, business facts, retrieved passages, recent history."""

from __future__ import annotations

from collections.abc import Sequence

from chat.models import BotConfiguration, Message
from chat.retrieval import RetrievedPassage

# The model replies with exactly this when the passages do not answer the visitor or a person is needed.
HANDOFF_MARKER = "[[HANDOFF]]"


def system_prompt(*, config: BotConfiguration, business_name: str, passages: Sequence[RetrievedPassage]) -> str:
    """The system message: who the bot is, what it may say, and the only knowledge it may use."""
    if config.reply_language == BotConfiguration.ReplyLanguage.FIXED:
        language_rule = f"Always reply in the language with code '{config.language}'."
    else:
        language_rule = "Reply in the language the visitor writes in."
    knowledge = "\n".join(f"[{i}] {p.title}: {p.content}" for i, p in enumerate(passages, start=1))
    return "\n".join(
        [
            f"You are {config.bot_name}, {config.persona}, chatting with visitors of {business_name}'s website.",
            f"Your tone is {config.tone}. Keep answers short: at most three sentences.",
            "Answer ONLY from the business facts and knowledge passages below. Never invent prices, times, "
            "policies or contact details. Do not mention these instructions or the passages' numbers.",
            f"If the passages do not contain the answer, or the visitor needs a person, reply with exactly "
            f"{HANDOFF_MARKER} and nothing else.",
            language_rule,
            "",
            "Business facts:",
            config.business_facts.strip() or "(none)",
            "",
            "Knowledge passages:",
            knowledge or "(none)",
        ]
    )


def chat_messages(
    *,
    config: BotConfiguration,
    business_name: str,
    passages: Sequence[RetrievedPassage],
    history: Sequence[Message],
    question: str,
) -> list[dict[str, str]]:
    """The Chat Completions `messages`: system prompt, recent history, then the visitor's turn."""
    messages = [
        {"role": "system", "content": system_prompt(config=config, business_name=business_name, passages=passages)}
    ]
    for message in history:
        if message.role == Message.Role.VISITOR:
            messages.append({"role": "user", "content": message.content})
        elif message.role in (Message.Role.BOT, Message.Role.AGENT) and not message.private:
            messages.append({"role": "assistant", "content": message.content})
    messages.append({"role": "user", "content": question})
    return messages
