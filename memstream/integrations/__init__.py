"""Doors for agents, each a thin shape over :class:`memstream.integrations.scope.UserMemory`
(which talks to the query service through :mod:`memstream.client`; nothing here opens a
store or imports the worker):

- ``mcp``: the ``memstream mcp`` server (extra ``mcp``);
- ``autogen``: an AutoGen ``Memory`` (extra ``autogen``);
- ``agentscope``: an AgentScope long-term memory middleware (extra ``agentscope``);
- ``langgraph``: tools for a LangGraph ReAct agent (extra ``langgraph``);
- ``openai_agents``: function tools for the OpenAI Agents SDK (extra ``openai-agents``).

Each module imports its framework at import time: import only the one you use.
"""
