"""The embedding model run by ONNX Runtime (``RAG_EMBED_BACKEND=onnx`` or ``onnx-int8``).

sentence-transformers' own ``backend="onnx"`` needs Optimum, whose ONNX exporter
(optimum-onnx 0.1) requires transformers < 4.58, older than this project's; so the model
is exported here with PyTorch's exporter, once, from the loaded sentence-transformers model
(mean pooling and normalisation inside the graph), and ``onnx-int8`` is ONNX Runtime's
dynamic int8 quantization of that file.

Beside the exported file go the model's own tokenizer (``tokenizer.json``, read by
``rag.model_tokens``) and its prompts and length limit (``encoder.json``): once all three are
there, loading needs neither PyTorch nor transformers, only ONNX Runtime and the ``tokenizers``
library (under a second, against about nine for sentence-transformers), which is what makes a
cold ``rag ask`` quick.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag.errors import ModelError

log = logging.getLogger(__name__)
BACKENDS = ("torch", "onnx", "onnx-int8")
TOKENIZER, SETTINGS = "tokenizer.json", "encoder.json"


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


def model_file(folder: Path, int8: bool) -> Path:
    """Where the exported model of ``folder`` is (or will be)."""
    return folder / ("model-int8.onnx" if int8 else "model.onnx")


def export(model, folder: Path, int8: bool) -> Path:
    """Export ``model`` into ``folder``: its tokenizer and settings, then the ONNX file, made once.

    The model file is written last and renamed into place, so its presence means the folder is whole.
    """
    import torch

    target = model_file(folder, int8)
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / TOKENIZER, model.tokenizer.backend_tokenizer.to_str())
    _write(folder / SETTINGS, json.dumps({"prompts": model.prompts, "max_length": model.max_seq_length}))
    if target.exists():
        return target
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
    externalize(plain, target)
    plain.unlink()
    return target


def externalize(source: Path, target: Path) -> None:
    """``source`` saved as ``target`` with its weights in ``<target>.data`` beside it.

    ONNX Runtime maps weights kept apart from the graph instead of copying them in: the session
    loads in 0.2 s and holds about 150 MB, where the same model in one file took 2 s and peaked at
    900 MB (the 470 MB of weights read, then copied).  Both files are written in a folder of this
    process's own and renamed into place, the weights first: the graph's presence means its
    weights are whole.
    """
    import onnx

    model = onnx.load(str(source))
    work = target.parent / f".externalize.{os.getpid()}"  # a run at the same time writes its own
    work.mkdir(exist_ok=True)
    data = f"{target.name}.data"
    onnx.save_model(
        model, str(work / target.name), save_as_external_data=True, all_tensors_to_one_file=True, location=data
    )
    (work / data).replace(target.with_name(data))
    (work / target.name).replace(target)
    work.rmdir()


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


class OnnxEncoder:
    """``encode`` as the embedder calls it, run by ONNX Runtime on an exported folder."""

    def __init__(self, folder: Path, int8: bool) -> None:
        import onnxruntime as ort

        from rag.model_tokens import ModelTokenizer

        settings = json.loads((folder / SETTINGS).read_text(encoding="utf-8"))
        self.prompts: dict[str, str] = settings["prompts"]
        definition = json.loads((folder / TOKENIZER).read_text(encoding="utf-8"))
        self.tokens = ModelTokenizer(definition, settings["max_length"])
        self.session = ort.InferenceSession(str(model_file(folder, int8)), providers=ort.get_available_providers())
        # ONNX Runtime keeps the memory of the largest batch it ran (its arena): 250 MB after a
        # collection's batches, for the rest of a process that then embeds one question at a time.
        # Shrunk after each run: 35 MB, the same vectors, no slower (measured in one run).
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    @classmethod
    def load(cls, folder: Path, int8: bool, sentence_transformer: Callable[[], object]) -> OnnxEncoder:
        """The encoder of ``folder``, exported first from ``sentence_transformer()`` when not yet whole."""
        try:
            target = model_file(folder, int8)
            if not all(p.exists() for p in (target, folder / TOKENIZER, folder / SETTINGS)):
                export(sentence_transformer(), folder, int8)
            elif not target.with_name(f"{target.name}.data").exists():  # exported whole by an older version
                externalize(target, target)
            return cls(folder, int8)
        except ModelError:
            raise
        except Exception as e:  # exporter, runtime and tokenizer raise many kinds
            raise ModelError(
                f"cannot run the embedding model with ONNX Runtime ({e.__class__.__name__}: {e}); "
                "set RAG_EMBED_BACKEND=torch"
            ) from e

    def encode(self, texts: list[str], prompt_name: str | None, batch_size: int) -> np.ndarray:
        """Normalised vectors of ``texts`` (the model's prompt first), batched by length."""
        prefix = self.prompts.get(prompt_name, "") if prompt_name else ""
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            ids, mask = self.tokens.batch([prefix + texts[i] for i in chosen])
            vectors = self.session.run(None, {"input_ids": ids, "attention_mask": mask}, self.run_options)[0]
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[chosen] = vectors
        return out
