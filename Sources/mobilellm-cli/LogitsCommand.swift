import ArgumentParser
import Foundation
import MobileLLM

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Print the logits a model gives for a token sequence.",
        discussion: "Output: {\"logits\": [[...]]} with one row (the last position) or, with --all-positions, one row per input token."
    )

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Comma-separated token ids, e.g. 1,2,3.")
    var tokens: String

    @Flag(name: .long, help: "Print a row for every input position instead of only the last.")
    var allPositions = false

    func run() throws {
        let ids = try parseTokenList(tokens)
        guard !ids.isEmpty else { throw ValidationError("--tokens: needs at least one token id") }
        let model = try modelOptions.load()
        let session = try model.makeSession(contextLength: min(model.configuration.maxPositions, max(ids.count, 1)), kvCacheType: modelOptions.kvCache)
        let logits = try session.feed(ids, logits: allPositions ? .all : .last)
        var out = "{\"logits\": ["
        out.reserveCapacity(logits.values.count * 12 + 32)
        for row in 0..<logits.rowCount {
            if row > 0 { out += ", " }
            out += "["
            var first = true
            for value in logits.row(row) {
                if !first { out += ", " }
                first = false
                out += jsonNumber(value)
            }
            out += "]"
        }
        out += "]}"
        emit(out)
    }
}
