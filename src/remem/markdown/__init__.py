"""Markdown memory: a user's memories as files a person can read, edit, grep and keep in git.

``REMEM_STORE=markdown`` makes the files the store (:class:`~remem.markdown.store.MarkdownStore`): each user's
memories live in ``<home>/markdown/<user>/`` (one file per category, ``profile.md`` for the core facts the chat
agent reads, ``trash.md`` for deleted ones; format: :mod:`remem.markdown.fmt`). Hand edits are applied through
the one write path with history events by actor ``file`` (:mod:`remem.markdown.sync`). Around it:
:func:`~remem.markdown.transfer.export_markdown` / :func:`~remem.markdown.transfer.import_markdown` (any store),
:func:`~remem.markdown.grep.grep` and :func:`~remem.markdown.ops.sync`.
"""
