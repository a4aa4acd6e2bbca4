"""Face detection, alignment and embedding, shared by the service, the evaluation and the benchmarks."""
