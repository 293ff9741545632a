
/// A tensor source that reports how many of the expected tensors were taken and can stop a load.
private final class ProgressTensorSource: TensorSource {
    let base: ModelDirectory
    let expected: Int
    let report: (Double) -> Bool
    private(set) var taken = 0
    private(set) var aborted = false

    init(base: ModelDirectory, report: @escaping (Double) -> Bool) {
        self.base = base
        expected = max(1, base.tensors.count)
        self.report = report
    }

    func tensor(named name: String) -> StoredTensor? {
        // Weights are mapped, not read: collecting them is 10%...90% of a load. After an abort the remaining
        // tensors are still handed out (that costs nothing) and the caller throws `cancelled` at the end.
        if !aborted {
            taken += 1
            aborted = !report(0.1 + 0.8 * min(1, Double(taken) / Double(expected)))
        }
        return base.tensor(named: name)
    }

    var location: String { base.location }
    func storedName(of name: String) -> String { base.storedName(of: name) }
    var configurationFieldNames: [String: String] { base.configurationFieldNames }
}

extension Model {
    /// Loads like `init(path:options:)`, calling `progress` with a fraction in [0, 1] several times on this thread
    /// (at least at 0 and at 1). When `progress` returns false it is not called again and the load throws
    /// `MobileLLMError.cancelled`.
    public convenience init(path: String, options: ModelLoadOptions = ModelLoadOptions(), progress: @escaping (Double) -> Bool) throws {
        guard progress(0) else { throw MobileLLMError.cancelled }
        if pathKind(path) == .directory {
            let directory = try ModelDirectory(path: path)
            guard progress(0.1) else { throw MobileLLMError.cancelled }
            let source = ProgressTensorSource(base: directory, report: progress)
            try self.init(path: path, configuration: directory.configuration, source: source,
                          tokenizerFile: directory.tokenizerFile, options: options)
            if source.aborted { throw MobileLLMError.cancelled }
            if options.lockMemory { try Self.lock(directory.mappedFiles) }
        } else {
            try self.init(path: path, options: options)
        }
        guard progress(1) else { throw MobileLLMError.cancelled }
    }
}
