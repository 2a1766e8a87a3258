"""autoreply: a chatbot and auto-reply service for social media accounts."""

__version__ = "0.1.0"
