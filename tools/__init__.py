from promptartisan.tools.grounding import Grounder, Grounding, load_grounder  # noqa: F401
from promptartisan.tools.overlay import overlay  # noqa: F401
