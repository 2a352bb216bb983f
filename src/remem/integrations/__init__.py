"""Adapters that plug remem into agent frameworks: one module per framework, each in its own extra.

=====================  ==================================================  ==========================
module                 what it gives the framework                         extra
=====================  ==================================================  ==========================
``langgraph``          ``RememStore``: a LangGraph ``BaseStore``           ``remem[langgraph]``
``langchain``          ``search_memory``/``save_memory`` tools, a           ``remem[langchain]``
                       chat-message history on episodes
``openai_agents``      ``RememSession`` and ``memory_tools``                ``remem[openai-agents]``
``pydantic_ai``        ``memory_toolset`` reading ``RunContext.deps``       ``remem[pydantic-ai]``
``llamaindex``         ``RememMemoryBlock`` for ``llama_index`` ``Memory``  ``remem[llamaindex]``
=====================  ==================================================  ==========================

They hold no memory logic: every read and write is one call of the public :class:`remem.Memory` API, and the
user id always comes from the host (a constructor argument, the run's deps, the graph's namespace), never
from a model's tool arguments. A :class:`remem.RememError` raised by a tool call (an empty query, a lone
surrogate, an over-long category) reaches the model in the framework's own tool-error form — LangChain's
``ToolException``, Pydantic AI's ``ModelRetry``, the Agents SDK's tool output — and never ends the agent's run.
Importing this package imports no framework; each module imports its own.
"""
