"""Planning: from a person's words to a `Plan`. It holds the plan schema (`plan`), the planners
(the offline rules planner and its phrase grammar, the LLM planners, the in-process local
planner, the auto planner that picks among them, and the factory `planners` that loads one from
a spec and is the one way the Editor asks a planner), the clarification answers (`clarify`),
the references to numbered selections (`selection_refs`), the plans of history requests
(`history_requests`) and the phrasing score. It may import the foundation (`promptartisan.*`
modules), `tools` and `engine`, never `agent.sessions`, `agent.batch`, the Editor or `ui`: a
session reaches a planner only as the lines `planners.version_history` reads from it (its type
is named under `TYPE_CHECKING`, which loads nothing)."""
