"""Languages: the course in Chinese from its English source (notebooks) and the messages (gettext)."""
