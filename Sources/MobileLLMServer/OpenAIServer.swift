import Foundation
import Hummingbird
import Logging
import MobileLLM
import MobileLLMOpenAI
import NIOCore
import ServiceLifecycle

/// Settings of `mobilellm serve` (see docs/server.md).
public struct ServerConfiguration: Sendable {
    /// Address to bind (default loopback only).
    public var host = "127.0.0.1"
    /// Port (0: any free port).
    public var port = 8080
    /// Most sequences decoding at once.
    public var parallel = 8
    /// Most requests waiting for room in the batch.
    public var maxQueue = 256
    /// KV positions per sequence (nil: the model's maximum).
    public var contextLength: Int?
    /// The bearer token `/v1/*` requests must carry (nil: none).
    public var apiKey: String?
    /// The id `/v1/models` reports and requests may name.
    public var modelID: String
    /// Largest request body accepted (bytes).
    public var maxBodyBytes = 1 << 20
    /// Seconds a connection may stay idle before it is closed.
    public var idleTimeoutSeconds: Int64 = 60
    /// KV cache type of every sequence (nil: the model's default).
    public var kvCacheType: KVCacheType?

    /// A configuration serving the model under `modelID`, with the defaults above.
    public init(modelID: String) {
        self.modelID = modelID
    }
}

/// The OpenAI-compatible server: routes, request validation, streaming, metrics; generation goes through one
/// `BatchScheduler`.
public final class OpenAIServer: Sendable {
    /// The served model.
    public let model: Model
    /// Its settings.
    public let configuration: ServerConfiguration
    /// The batch every request joins.
    public let scheduler: BatchScheduler
    private let counters = Locked([String: Int]())
    private let tokenizer: Tokenizer

    /// A server for `model` (call `run(onListening:)` to serve). Throws for bad settings or a model without a
    /// tokenizer.
    public init(model: Model, configuration: ServerConfiguration) throws {
        self.model = model
        self.configuration = configuration
        let capacity = min(configuration.contextLength ?? model.configuration.maxPositions, model.configuration.maxPositions)
        if let requested = configuration.contextLength, requested > model.configuration.maxPositions || requested < 2 {
            throw MobileLLMError.invalidArgument(name: "context-length",
                                                 problem: "expected 2...\(model.configuration.maxPositions) (the model's maximum positions), found \(requested)")
        }
        tokenizer = try model.tokenizer()
        scheduler = try BatchScheduler(model: model, parallel: configuration.parallel, maxQueue: configuration.maxQueue,
                                       contextLength: capacity, kvCacheType: configuration.kvCacheType)
    }

    /// Serves until SIGINT or SIGTERM: then stops accepting connections, cancels running generations (their
    /// streams end normally) and returns. `onListening` receives the bound port once the server listens.
    public func run(onListening: @escaping @Sendable (Int) -> Void) async throws {
        var logger = Logger(label: "mobilellm.serve")
        logger.logLevel = .warning
        let app = Application(
            responder: Responder(server: self),
            server: .http1(configuration: .init(additionalChannelHandlers: [ClientAbortHandler()],
                                                idleTimeout: .seconds(configuration.idleTimeoutSeconds))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "mobilellm"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        // Shut down in reverse order: the scheduler first (cancelling generations ends the streams), then the app.
        let group = ServiceGroup(configuration: .init(services: [.init(service: app), .init(service: SchedulerService(scheduler: scheduler))],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    // MARK: - Requests

    /// The capacity (KV positions) of every sequence.
    var capacity: Int { scheduler.contextLength }

    func count(_ endpoint: String, _ status: Int) {
        counters.withLock { $0["\(endpoint)\t\(status)", default: 0] += 1 }
    }

    /// Every path served, with its method.
    private static let routes: [String: HTTPRequest.Method] = ["/health": .get, "/metrics": .get, "/v1/models": .get,
                                                               "/v1/chat/completions": .post, "/v1/completions": .post]

    /// Routes one request arriving on `channel`; every failure becomes an OpenAI error response.
    func respond(to request: Request, channel: any Channel) async -> Response {
        let path = request.uri.path
        let routes = Self.routes
        let endpoint = routes[path] == nil ? "other" : path
        do {
            guard let method = routes[path] else {
                throw APIError(status: 404, message: "no route \(path); see /v1/chat/completions, /v1/completions, /v1/models, /health, /metrics",
                               type: "invalid_request_error", code: "not_found")
            }
            guard request.method == method else {
                throw APIError(status: 405, message: "\(path) takes \(method.rawValue), not \(request.method.rawValue)",
                               type: "invalid_request_error", code: "method_not_allowed")
            }
            if path.hasPrefix("/v1/"), let key = configuration.apiKey {
                let header = request.headers[.authorization] ?? ""
                guard header == "Bearer \(key)" else {
                    throw APIError(status: 401, message: header.isEmpty ? "missing API key: send 'Authorization: Bearer KEY'" : "incorrect API key",
                                   type: "authentication_error", code: "invalid_api_key")
                }
            }
            let response: Response
            switch path {
            case "/health":
                response = json(["status": "ok"])
            case "/metrics":
                response = Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                                     body: .init(byteBuffer: ByteBuffer(string: metricsText())))
            case "/v1/models":
                response = json(["object": "list", "data": [[
                    "id": .string(configuration.modelID), "object": "model", "created": .int(Int(Date().timeIntervalSince1970)),
                    "owned_by": "mobilellm", "max_model_len": .int(capacity)]]])
            default:
                response = try await complete(request, endpoint: path == "/v1/chat/completions" ? .chat : .completions,
                                              channel: channel)
            }
            count(endpoint, Int(response.status.code))
            return response
        } catch {
            let failure: APIError
            if let error = error as? any HTTPResponseError {
                let status = Int(error.status.code)
                failure = APIError(status: status,
                                   message: status == 413 ? "the body is larger than \(configuration.maxBodyBytes) bytes (--max-body-bytes)"
                                                          : "the request could not be read (\(error.status.reasonPhrase))",
                                   type: "invalid_request_error", code: status == 413 ? "body_too_large" : nil)
            } else {
                failure = APIError(error)
            }
            count(endpoint, failure.status)
            return Response(status: .init(code: failure.status), headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: failure.json.jsonText)))
        }
    }

    private func json(_ value: TemplateValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.jsonText)))
    }

    /// `/v1/chat/completions` and `/v1/completions`.
    private func complete(_ request: Request, endpoint: CompletionEndpoint, channel: any Channel) async throws -> Response {
        var request = request
        // A declared length over the limit is refused before any of the body is read (it may never come).
        if let declared = request.headers[.contentLength], let length = Int(declared), length > configuration.maxBodyBytes {
            throw APIError(status: 413, message: "the body is larger than \(configuration.maxBodyBytes) bytes (--max-body-bytes)",
                           type: "invalid_request_error", code: "body_too_large")
        }
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            // Malformed framing (a bad chunk size, a truncated body): the client's fault.
            throw APIError.invalid(nil, "the body could not be read: \(error)")
        }
        let parsed = try CompletionRequest(endpoint: endpoint, body: Array(body.readableBytesView), model: model,
                                           servedID: configuration.modelID, capacity: capacity)
        let scheduled = try scheduler.submit(parsed)
        // A client that disconnects cancels its sequences (a finished request ignores it).
        channel.closeFuture.whenComplete { _ in scheduled.cancel() }
        let writer = ResponseWriter(server: self, request: parsed)
        if !parsed.stream {
            var state = writer.makeState()
            let outcome: APIError? = await withTaskCancellationHandler {
                for await update in scheduled.updates {
                    if case let .failed(error) = update { return error }
                    state.apply(update)
                }
                return nil
            } onCancel: {
                scheduled.cancel()
            }
            if let outcome { throw outcome }
            return json(writer.body(state))
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { bodyWriter in
            do {
                try await writer.stream(scheduled, to: &bodyWriter)
                try await bodyWriter.finish(nil)
            } catch {
                scheduled.cancel()
                throw error
            }
        })
    }

    /// Prometheus text of the counters.
    private func metricsText() -> String {
        let stats = scheduler.statistics
        var lines = ["# HELP mobilellm_requests_total HTTP requests answered, by endpoint and status.",
                     "# TYPE mobilellm_requests_total counter"]
        for (key, value) in counters.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "\t")
            lines.append("mobilellm_requests_total{endpoint=\"\(parts[0])\",status=\"\(parts[1])\"} \(value)")
        }
        lines += ["# HELP mobilellm_prompt_tokens_total Prompt tokens admitted into the batch.",
                  "# TYPE mobilellm_prompt_tokens_total counter", "mobilellm_prompt_tokens_total \(stats.promptTokens)",
                  "# HELP mobilellm_generation_tokens_total Tokens generated.",
                  "# TYPE mobilellm_generation_tokens_total counter", "mobilellm_generation_tokens_total \(stats.generatedTokens)",
                  "# HELP mobilellm_queue_depth Requests waiting for room in the batch.",
                  "# TYPE mobilellm_queue_depth gauge", "mobilellm_queue_depth \(stats.queueDepth)",
                  "# HELP mobilellm_running_sequences Sequences in the batch.",
                  "# TYPE mobilellm_running_sequences gauge", "mobilellm_running_sequences \(stats.runningSequences)",
                  "# HELP mobilellm_decode_tokens_per_second Tokens generated per second over recent steps.",
                  "# TYPE mobilellm_decode_tokens_per_second gauge",
                  "mobilellm_decode_tokens_per_second \(String(format: "%.3f", stats.decodeTokensPerSecond))"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The Hummingbird responder: every request goes to `respond(to:channel:)`.
    struct Responder: HTTPResponder {
        typealias Context = ServerContext
        let server: OpenAIServer
        func respond(to request: Request, context: Context) async throws -> Response {
            await server.respond(to: request, channel: context.channel)
        }
    }

    /// Closes a connection whose client has closed its side (end of input), as nginx treats it: the client has gone,
    /// and the close cancels its running request (`complete` watches the channel's closeFuture). Hummingbird allows
    /// half-closed connections, so without this a client that disconnects during a non-streaming request would keep
    /// its sequences generating until they finish.
    final class ClientAbortHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
        typealias InboundIn = Any
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed { context.close(promise: nil) }
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// The request context: Hummingbird's, plus the connection's channel (its close cancels the request).
    struct ServerContext: RequestContext {
        typealias Source = ApplicationRequestContextSource
        var coreContext: CoreRequestContextStorage
        let channel: any Channel
        init(source: Source) {
            coreContext = .init(source: source)
            channel = source.channel
        }
    }

    /// Starts the scheduler with the server and cancels its work at graceful shutdown.
    struct SchedulerService: Service {
        let scheduler: BatchScheduler
        func run() async throws {
            scheduler.start()
            try? await gracefulShutdown()
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread {
                    scheduler.shutdown()
                    done.resume()
                }
            }
        }
    }

    /// The text of a token for logprobs (its bytes, invalid UTF-8 replaced).
    func tokenText(_ token: Int32) -> (text: String, bytes: [UInt8]) {
        let bytes = (try? tokenizer.tokenBytes(token)) ?? []
        return (String(decoding: bytes, as: UTF8.self), bytes)
    }
}
