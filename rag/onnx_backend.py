"""The embedding model run by ONNX Runtime (``RAG_EMBED_BACKEND=onnx`` or ``onnx-int8``).

sentence-transformers' own ``backend="onnx"`` needs Optimum, whose ONNX exporter
(optimum-onnx 0.1) requires transformers < 4.58, older than this project's; so the model
is exported here with PyTorch's exporter, once, from the loaded sentence-transformers model
(mean pooling and normalisation inside the graph), and ``onnx-int8`` is ONNX Runtime's
dynamic int8 quantization of that file.  Tokenising and prompts stay the model's own.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from rag.errors import ModelError

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx", "onnx-int8")


def _pooled(model):
    """The transformer of ``model`` with mean pooling and L2 normalisation, as one torch module."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, transformer) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    return Pooled(model[0].auto_model.eval())


def export(model, folder: Path, int8: bool) -> Path:
    """The ONNX file of ``model`` in ``folder`` (``model.onnx`` or ``model-int8.onnx``), made once."""
    import torch

    target = folder / ("model-int8.onnx" if int8 else "model.onnx")
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / f"model.{os.getpid()}.partial.onnx"
    sample = model.tokenizer(["passage: 示例 example"], return_tensors="pt")
    log.info("exporting the embedding model to %s", target)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on code paths this model never takes
        torch.onnx.export(
            _pooled(model),
            (sample["input_ids"], sample["attention_mask"]),
            str(plain),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, and exact for this model
        )
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = folder / f"model-int8.{os.getpid()}.partial.onnx"
        quantize_dynamic(str(plain), str(quantized), weight_type=QuantType.QInt8)
        plain.unlink()
        plain = quantized
    plain.replace(target)  # a half-written file is never taken for the model
    return target


class OnnxEncoder:
    """``encode`` as the embedder calls it, run by ONNX Runtime on the exported file."""

    def __init__(self, model, folder: Path, int8: bool) -> None:
        import onnxruntime as ort

        self.model = model
        try:
            path = export(model, folder, int8)
            self.session = ort.InferenceSession(str(path), providers=ort.get_available_providers())
        except Exception as e:  # exporter and runtime raise many kinds
            raise ModelError(
                f"cannot run the embedding model with ONNX Runtime ({e.__class__.__name__}: {e}); "
                "set RAG_EMBED_BACKEND=torch"
            ) from e

    def encode(self, texts: list[str], prompt_name: str | None, batch_size: int) -> np.ndarray:
        """Normalised vectors of ``texts`` (the model's prompt first), batched by length."""
        prefix = self.model.prompts.get(prompt_name, "") if prompt_name else ""
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            encoded = self.model.tokenizer(
                [prefix + texts[i] for i in chosen],
                padding=True,
                truncation=True,
                max_length=self.model.max_seq_length,
                return_tensors="np",
            )
            feeds = {k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
            vectors = self.session.run(None, feeds)[0]
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[chosen] = vectors
        return out
