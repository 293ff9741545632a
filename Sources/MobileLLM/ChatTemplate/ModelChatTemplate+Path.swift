
extension ModelChatTemplate {
    /// The chat template of the model at `path`: a Hugging Face directory (see `load(modelDirectory:)`) or a GGUF
    /// file (`tokenizer.chat_template`, with BOS/EOS strings from its vocabulary); the built-in Llama-3 header format
    /// when the model has no template.
    public static func load(modelPath path: String) throws -> ModelChatTemplate {
        if pathKind(path) == .file,
           try GGUFFile.hasMagic(path: path) {
            return try load(gguf: try Tokenizer.load(path: path), path: path)
        }
        return try load(modelDirectory: path)
    }

    /// The template held by a GGUF tokenizer, or the built-in default.
    static func load(gguf tokenizer: Tokenizer, path: String) throws -> ModelChatTemplate {
        try ModelChatTemplate(source: tokenizer.chatTemplate, name: path + " tokenizer.chat_template", bosToken: tokenizer.bosToken,
                              eosToken: tokenizer.eosToken)
    }
}
