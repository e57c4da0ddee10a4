"""Languages: the course in Chinese from its English source (notebooks) and the messages (gettext)."""

from minigpt2.i18n.messages import current_language, set_language

__all__ = ["current_language", "set_language"]
