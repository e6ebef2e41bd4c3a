"""Batch: one request over many images, `promptartisan batch`. It holds the inputs (`inputs`:
paths, globs, URIs and lists expanded into sources), the file system seam (`files`: local paths
or `pyarrow.fs` URIs, atomic writes), the run (`run`: plan once, key each item, edit, resume),
the Ray Data runner (`ray_runner`) and the report (`report`). It may import everything below
the agent's top (the foundation, `tools`, `engine`, `agent.planning`, `agent.sessions`) and the
Editor it drives (`agent.editor`, `agent.image_edit`), never `ui`."""
