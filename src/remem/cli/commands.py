"""Foundation commands: add, search, list, show, history, update, delete, restore, forget-user, export,
import, stats, demo. (Filled in by the foundation issue.)"""

from __future__ import annotations
