
/// `JSONValue` trees from the engine's one JSON reader (`JSONReader`, which states the rules): config, index and
/// tokenizer files and safetensors headers.
enum FastJSON {
    /// Parses `bytes` (`Data`, `[UInt8]`, …); `path` names the source in errors.
    static func parse(_ bytes: some Collection<UInt8>, path: String) throws -> JSONValue {
        try JSONReader<JSONValue>.parse(bytes, path: path)
    }

    /// Parses `bytes`, returning the members of `model.<captureKey>` in file order apart from the tree (see
    /// `JSONReader.parse(_:path:captureKey:)`).
    static func parse(_ bytes: some Collection<UInt8>, path: String, captureKey: String?) throws -> (value: JSONValue, captured: [(String, JSONValue)]?) {
        try JSONReader<JSONValue>.parse(bytes, path: path, captureKey: captureKey)
    }

    /// Reads and parses the file at `path`.
    static func load(path: String) throws -> JSONValue {
        try JSONReader<JSONValue>.load(path: path)
    }
}

extension JSONValue {
    /// The same as `parse` (kept for callers that name the fast parser). `path` names the source in errors.
    public static func parseFast(_ bytes: some Collection<UInt8>, path: String) throws -> JSONValue {
        try FastJSON.parse(bytes, path: path)
    }
}
