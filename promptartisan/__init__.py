"""PromptArtisan: conversational multi-instruction image editing."""

__version__ = "0.1.0"
