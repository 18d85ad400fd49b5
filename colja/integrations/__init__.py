"""colja inside RAG frameworks: LangChain and LlamaIndex adapters.

* :mod:`colja.integrations.langchain` (``pip install "colja[langchain]"``):
  ``ColjaRetriever``, ``ColjaReranker``, ``ColjaVectorStore``.
* :mod:`colja.integrations.llama_index` (``pip install "colja[llamaindex]"``):
  ``ColjaRetriever``, ``ColjaRerank``, ``ColjaVectorStore``.

Every adapter takes any object with the searchable contract
(:class:`colja.Searchable`: ``Index``, ``InMemoryIndex``, an HTTP client):
it only calls ``search`` / ``add`` / ``delete`` and reads ``Hit`` fields.
Importing this package imports neither framework.
"""
