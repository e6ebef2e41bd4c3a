"""PromptArtisan: conversational multi-instruction image editing."""

__version__ = "0.1.0"

import logging


class _TorchaoPickleNote(logging.Filter):
    """diffusers 0.42 warns at import that torchao ≥ 0.18 lacks the tensor classes it allows
    when unpickling torchao checkpoints; the engine quantizes at load and unpickles none."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unable to import `torchao` Tensor objects" not in record.getMessage()


logging.getLogger("diffusers.quantizers.torchao.torchao_quantizer").addFilter(
    _TorchaoPickleNote())
