import ArgumentParser
import Dispatch
import Foundation
import MobileLLM
import MobileLLMServer

/// `mobilellm serve`: the OpenAI-compatible HTTP server (docs/server.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over HTTP with the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics).",
        discussion: """
        Concurrent requests, and the n samples of one request, join one continuous batch. Once listening, prints \
        {"listening": "http://HOST:PORT", "model": "ID"} on stdout. SIGINT/SIGTERM cancel running generations and \
        exit 0. See docs/server.md for the request fields and errors.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Address to bind (default 127.0.0.1: this machine only).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port (0: any free port).")
    var port = 8080

    @Option(name: .long, help: "Most sequences decoding at once; further requests wait.")
    var parallel = 8

    @Option(name: .long, help: "KV positions per sequence (default: the model's maximum).")
    var contextLength: Int?

    @Option(name: .long, help: "Require 'Authorization: Bearer KEY' on /v1/* requests.")
    var apiKey: String?

    @Option(name: .long, help: "The model id /v1/models reports (default: the model's file or directory name).")
    var modelID: String?

    @Option(name: .long, help: "Largest request body in bytes.")
    var maxBodyBytes = 1 << 20

    @Option(name: .long, help: "Most requests waiting for room in the batch (503 beyond).")
    var maxQueue = 256

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port: expected 0...65535, found \(port)") }
        guard parallel >= 1 && parallel <= 256 else { throw ValidationError("--parallel: expected 1...256, found \(parallel)") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes: expected at least 1024, found \(maxBodyBytes)") }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue: expected a count >= 1, found \(maxQueue)") }
        if let contextLength, contextLength < 2 { throw ValidationError("--context-length: expected at least 2, found \(contextLength)") }
        if apiKey == "" { throw ValidationError("--api-key: expected a non-empty key") }
        if modelID == "" { throw ValidationError("--model-id: expected a non-empty id") }
        guard !host.isEmpty else { throw ValidationError("--host: expected an address") }
    }

    func run() throws {
        let model = try modelOptions.load()
        let path = try resolvedModelPath(modelOptions.model)
        var name = URL(fileURLWithPath: path).lastPathComponent
        if name.hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        var configuration = ServerConfiguration(modelID: modelID ?? name)
        configuration.host = host
        configuration.port = port
        configuration.parallel = parallel
        configuration.contextLength = contextLength
        configuration.apiKey = apiKey
        configuration.maxBodyBytes = maxBodyBytes
        configuration.maxQueue = maxQueue
        configuration.kvCacheType = modelOptions.kvCache
        let server = try OpenAIServer(model: model, configuration: configuration)
        let host = self.host
        let id = configuration.modelID
        let outcome = ServerOutcome()
        Task {
            do {
                try await server.run { port in
                    let address = host.contains(":") ? "[\(host)]" : host
                    emit(#"{"listening": "http://\#(address):\#(port)", "model": \#(JSONWriter.quote(id))}"#)
                }
            } catch {
                outcome.error = error
            }
            outcome.done.signal()
        }
        outcome.done.wait()
        if let error = outcome.error {
            throw MobileLLMError.io(path: "\(host):\(port)", reason: "the server stopped: \(error)")
        }
    }
}

/// How the server task ended: `error` is written before `done` is signalled and read after the wait returns.
private final class ServerOutcome: @unchecked Sendable {
    let done = DispatchSemaphore(value: 0)
    var error: Error?
}
