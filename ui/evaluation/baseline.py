"""The baseline a user gets from the LangChain tutorial, indexed beside ours in the same run."""

from __future__ import annotations

from pathlib import Path

from rag.config import Settings


class LangChainDefault:
    """What a user gets from the LangChain tutorial: 1000/200 character splits, plain Chroma, top-4."""

    def __init__(self, settings: Settings, embedder, files: list[Path]) -> None:
        from langchain_chroma import Chroma
        from langchain_core.documents import Document
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from ingest.parse import read_file
        from rag.store import chroma_client

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
        docs = []
        for path in files:
            text = read_file(path).text
            docs += splitter.split_documents([Document(page_content=text, metadata={"source": str(path.resolve())})])
        client = chroma_client(settings)
        if "langchain-default" in {c.name for c in client.list_collections()}:
            client.delete_collection("langchain-default")  # a run on the same home starts it afresh
        self.store = Chroma(
            collection_name="langchain-default",
            embedding_function=embedder,
            client=client,
            collection_metadata={"hnsw:space": "cosine"},
        )
        for i in range(0, len(docs), 256):
            self.store.add_documents(docs[i : i + 256])

    def search(self, question: str, k: int) -> list[tuple[str, str, int, int]]:
        out = []
        for d in self.store.similarity_search(question, k=k):
            start = d.metadata.get("start_index", 0)
            out.append((d.page_content, d.metadata["source"], start, start + len(d.page_content)))
        return out
