"""Sessions: a photo's versions on disk and what the chat does with them. It holds the session
store (`store`: the folder, its SQLite database, views and the version tree), the file rules
(`files`: atomic writes, paths kept inside the folder), the zip export (`export`), the search of
a session's history by description (`history_search`) and the taking back of one instruction
(`forget`). It may import the foundation, `tools`, `engine` and `agent.planning` (the `Plan`
a turn stores, the clarification answers), never `agent.batch` or `ui`."""
