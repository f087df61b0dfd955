"""The service's routes, one router per area: retrieval, memories, chat, ops."""
