import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MobileLLM

/// A response's status line and headers.
public struct HTTPResponse: Sendable {
    /// The HTTP status code.
    public var status: Int
    /// The URL that gave this response (after any redirects that were followed).
    public var url: URL
    /// Header fields, names lowercased.
    public var headers: [String: String]

    /// The value of header `name` (any case), or nil.
    public func header(_ name: String) -> String? {
        headers[name.lowercased()]
    }
}

/// A response whose status is not a success (or, for a HEAD without redirects, not a redirect either).
public struct HTTPStatusError: Error, Sendable, CustomStringConvertible {
    /// The response.
    public var response: HTTPResponse
    /// The start of the body, for the message (servers often explain there).
    public var bodyExcerpt: String

    /// The status code.
    public var status: Int { response.status }

    /// "HTTP 404 Not Found".
    public var statusLine: String {
        "HTTP \(status) \(HTTPURLResponse.localizedString(forStatusCode: status))"
    }

    /// The URL, the status line and the server's explanation (`X-Error-Message` or the start of the body).
    public var description: String {
        var text = "\(response.url.absoluteString): \(statusLine)"
        if let message = response.header("x-error-message") {
            text += ": \(message)"
        } else if !bodyExcerpt.isEmpty {
            text += ": \(bodyExcerpt)"
        }
        return text
    }
}

/// Which redirects a request follows.
public enum RedirectPolicy: Sendable {
    /// Every redirect; the `Authorization` header is dropped when one leaves the original host (a CDN).
    case follow
    /// Redirects to the same host only (a renamed repository); a redirect elsewhere is returned as the response,
    /// as huggingface_hub's metadata HEAD does.
    case sameHostOnly
}

/// Blocking HTTP(S) requests over URLSession (libcurl on Linux), for a command-line tool: metadata requests,
/// small GETs, and file downloads that resume with `Range`.
///
/// Network failures throw `MobileLLMError.io` naming the URL; error statuses throw `HTTPStatusError` (callers
/// turn those into messages that say what to do, such as setting a token for a 401).
public final class HTTPClient: Sendable {
    /// Sent as `User-Agent`.
    public let userAgent: String
    /// Seconds without any data before a request fails.
    public let idleTimeout: TimeInterval

    /// A client sending `userAgent`, giving up after `idleTimeout` seconds without data.
    public init(userAgent: String = "mobilellm/\(mobileLLMToolsVersion)", idleTimeout: TimeInterval = 60) {
        self.userAgent = userAgent
        self.idleTimeout = idleTimeout
    }

    /// Sends a HEAD request. With `.sameHostOnly`, a redirect to another host is returned (status 3xx, with its
    /// `Location`) instead of followed.
    /// - Throws: `HTTPStatusError` for a status ≥ 400, `MobileLLMError.io` for a network failure.
    public func head(_ url: URL, headers: [String: String] = [:], redirects: RedirectPolicy = .follow) throws -> HTTPResponse {
        let sink = MemorySink(limit: 0)
        let response = try perform(method: "HEAD", url: url, headers: headers, redirects: redirects, sink: sink)
        guard response.status < 400 else { throw HTTPStatusError(response: response, bodyExcerpt: "") }
        return response
    }

    /// Sends a GET request and returns the body (at most `maxBytes`).
    /// - Throws: `HTTPStatusError` for a status other than 2xx, `MobileLLMError.io` for a network failure or
    ///   a body over `maxBytes`.
    public func get(_ url: URL, headers: [String: String] = [:], maxBytes: Int = 64 << 20) throws -> (HTTPResponse, Data) {
        let sink = MemorySink(limit: maxBytes)
        let response = try perform(method: "GET", url: url, headers: headers, redirects: .follow, sink: sink)
        guard (200..<300).contains(response.status) else {
            throw HTTPStatusError(response: response, bodyExcerpt: sink.excerpt)
        }
        return (response, sink.data)
    }

    /// Sends a POST request with `body` and returns the response and its body (at most `maxBytes`), whatever the
    /// status: API clients read the error body of a 4xx themselves.
    /// - Throws: `MobileLLMError.io` for a network failure or a body over `maxBytes`.
    public func post(_ url: URL, headers: [String: String] = [:], body: Data, maxBytes: Int = 64 << 20) throws -> (HTTPResponse, Data) {
        let sink = MemorySink(limit: maxBytes)
        let response = try perform(method: "POST", url: url, headers: headers, redirects: .follow, sink: sink, body: body)
        return (response, sink.data)
    }

    /// Downloads `url` into `partPath`, resuming from the bytes already there with a `Range` request (a server
    /// that ignores the range makes it start over). Returns the file's final size.
    ///
    /// - Parameters:
    ///   - expectedSize: When known, a partial file longer than it is discarded and one of exactly this size is
    ///     taken as complete without a request.
    ///   - label: The name the progress bar shows.
    /// - Throws: `HTTPStatusError` for an error status, `MobileLLMError.io` for a network or disk failure (the
    ///   partial file stays, so the next attempt resumes).
    @discardableResult
    public func download(_ url: URL, headers: [String: String] = [:], to partPath: String, expectedSize: Int?,
                         label: String) throws -> Int {
        var existing = FileSystem.size(of: partPath) ?? 0
        if let expectedSize, existing > expectedSize {
            FileSystem.remove(partPath)
            existing = 0
        }
        if let expectedSize, existing == expectedSize, existing > 0 { return existing }
        var requestHeaders = headers
        if existing > 0 { requestHeaders["Range"] = "bytes=\(existing)-" }
        let sink = FileSink(path: partPath, existing: existing, expectedSize: expectedSize, label: label)
        let response = try perform(method: "GET", url: url, headers: requestHeaders, redirects: .follow, sink: sink)
        if response.status == 416, existing > 0 {
            // The range starts at or past the end: the part is complete if its size is the resource's size
            // ("Content-Range: bytes */SIZE", RFC 9110 15.5.17); otherwise start over.
            if let total = response.header("content-range").flatMap(Self.totalLength), total == existing { return existing }
            FileSystem.remove(partPath)
            return try download(url, headers: headers, to: partPath, expectedSize: expectedSize, label: label)
        }
        guard response.status == 200 || response.status == 206 else {
            throw HTTPStatusError(response: response, bodyExcerpt: sink.excerpt)
        }
        let size = FileSystem.size(of: partPath) ?? 0
        sink.progress?.finish(size)
        return size
    }

    /// SIZE from a `Content-Range: bytes A-B/SIZE` or `bytes */SIZE` header.
    static func totalLength(_ contentRange: String) -> Int? {
        guard let slash = contentRange.lastIndex(of: "/") else { return nil }
        return Int(contentRange[contentRange.index(after: slash)...].trimmingCharacters(in: .whitespaces))
    }

    /// A from a `Content-Range: bytes A-B/SIZE` header.
    static func firstByte(_ contentRange: String) -> Int? {
        let parts = contentRange.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bytes", let dash = parts[1].firstIndex(of: "-") else { return nil }
        return Int(parts[1][..<dash])
    }

    // MARK: One request

    private func perform(method: String, url: URL, headers: [String: String], redirects: RedirectPolicy,
                         sink: ResponseSink, body: Data? = nil) throws -> HTTPResponse {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
            throw MobileLLMError.invalidArgument(name: "url", problem: "\(url.absoluteString) is not an http(s) URL")
        }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = idleTimeout
        var allHeaders = headers
        allHeaders["User-Agent"] = userAgent
        // The real size matters (sizes are checked), so no transparent compression.
        allHeaders["Accept-Encoding"] = "identity"
        for (name, value) in allHeaders { request.setValue(value, forHTTPHeaderField: name) }

        let delegate = TransferDelegate(sink: sink, redirects: redirects, originalURL: url, headers: allHeaders)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = idleTimeout
        configuration.timeoutIntervalForResource = 7 * 24 * 3600
        configuration.httpCookieAcceptPolicy = .never
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        let task = session.dataTask(with: request)
        delegate.task = task
        task.resume()
        delegate.done.wait()
        session.finishTasksAndInvalidate()

        if let failure = delegate.sinkError { throw failure }
        if let response = delegate.response {
            // A redirect we chose not to follow completes with its own response (and sometimes a
            // "cancelled"-style error, depending on the platform); the response is what matters.
            if delegate.transportError == nil || (300..<400).contains(response.status) { return response }
        }
        let reason = delegate.transportError.map(Self.describe) ?? "no response"
        throw MobileLLMError.io(path: url.absoluteString, reason: "network error: \(reason)\(sink.resumeHint)")
    }

    private static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if ns.domain == NSURLErrorDomain {
            switch ns.code {
            case NSURLErrorTimedOut: return "timed out (no data for too long)"
            case NSURLErrorCannotFindHost, NSURLErrorDNSLookupFailed: return "cannot resolve the host name"
            case NSURLErrorCannotConnectToHost: return "cannot connect to the server"
            case NSURLErrorNetworkConnectionLost: return "the connection was lost"
            case NSURLErrorNotConnectedToInternet: return "not connected to the internet"
            case NSURLErrorSecureConnectionFailed, NSURLErrorServerCertificateUntrusted, NSURLErrorServerCertificateHasBadDate,
                 NSURLErrorServerCertificateNotYetValid, NSURLErrorServerCertificateHasUnknownRoot:
                return "TLS failed (\(ns.localizedDescription))"
            default: break
            }
        }
        return ns.localizedDescription
    }
}

/// Where a response body goes.
private class ResponseSink: @unchecked Sendable {
    /// Called with the final response before any body bytes; throwing cancels the request.
    func begin(_ response: HTTPResponse) throws {}
    /// Called with body bytes in order.
    func receive(_ data: Data) throws {}
    /// Text added to a network error message.
    var resumeHint: String { "" }
}

/// Keeps the body in memory, up to a limit; also keeps an excerpt of error bodies for messages.
private final class MemorySink: ResponseSink, @unchecked Sendable {
    let limit: Int
    var data = Data()
    var isError = false

    init(limit: Int) { self.limit = limit }

    override func begin(_ response: HTTPResponse) throws {
        isError = !(200..<300).contains(response.status)
    }

    override func receive(_ chunk: Data) throws {
        if isError {
            if data.count < 2048 { data.append(chunk.prefix(2048 - data.count)) }
            return
        }
        guard data.count + chunk.count <= limit else {
            throw MobileLLMError.io(path: "response", reason: "the response body is larger than \(limit) bytes")
        }
        data.append(chunk)
    }

    var excerpt: String {
        String(decoding: data.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Appends a successful body to a partial file (or rewrites it when the server sent the whole resource).
private final class FileSink: ResponseSink, @unchecked Sendable {
    let path: String
    let existing: Int
    let expectedSize: Int?
    let label: String
    var file: WritableFile?
    var written = 0
    var progress: ProgressBar?
    var errorBody = Data()

    init(path: String, existing: Int, expectedSize: Int?, label: String) {
        self.path = path
        self.existing = existing
        self.expectedSize = expectedSize
        self.label = label
    }

    override func begin(_ response: HTTPResponse) throws {
        switch response.status {
        case 206:
            let start = response.header("content-range").flatMap(HTTPClient.firstByte)
            guard start == existing else {
                throw MobileLLMError.io(path: response.url.absoluteString,
                                        reason: "asked for bytes from \(existing), the server sent a range starting at \(start.map(String.init) ?? "?")")
            }
            file = try WritableFile(path: path, append: true)
            written = existing
        case 200:
            // A full response: the server ignored or did not get the Range header.
            file = try WritableFile(path: path, append: false)
            written = 0
        default:
            return
        }
        let total = expectedSize ?? response.header("content-range").flatMap(HTTPClient.totalLength)
            ?? response.header("content-length").flatMap(Int.init).map { $0 + written }
        progress = ProgressBar(label: label, total: total, startBytes: written)
        if written > 0 {
            FileHandle.standardError.write(Data("  \(label): resuming at \(ProgressBar.format(written))\n".utf8))
        }
    }

    override func receive(_ data: Data) throws {
        guard let file else {
            if errorBody.count < 2048 { errorBody.append(data.prefix(2048 - errorBody.count)) }
            return
        }
        try data.withUnsafeBytes { try file.write($0) }
        written += data.count
        if let expectedSize, written > expectedSize {
            throw MobileLLMError.io(path: path, reason: "the server sent more than the expected \(expectedSize) bytes")
        }
        progress?.update(written)
    }

    override var resumeHint: String {
        written > 0 ? " (\(ProgressBar.format(written)) kept in \(path); run the command again to resume)" : ""
    }

    var excerpt: String {
        String(decoding: errorBody.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// URLSession callbacks for one request; the calling thread waits on `done`.
private final class TransferDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let sink: ResponseSink
    let redirects: RedirectPolicy
    let originalURL: URL
    let headers: [String: String]
    let done = DispatchSemaphore(value: 0)
    var task: URLSessionTask?
    var response: HTTPResponse?
    var sinkError: Error?
    var transportError: Error?

    init(sink: ResponseSink, redirects: RedirectPolicy, originalURL: URL, headers: [String: String]) {
        self.sink = sink
        self.redirects = redirects
        self.originalURL = originalURL
        self.headers = headers
    }

    private static func convert(_ response: URLResponse, fallback: URL) -> HTTPResponse {
        var headers: [String: String] = [:]
        var status = 0
        if let http = response as? HTTPURLResponse {
            status = http.statusCode
            for (key, value) in http.allHeaderFields {
                headers[String(describing: key).lowercased()] = String(describing: value)
            }
        }
        return HTTPResponse(status: status, url: response.url ?? fallback, headers: headers)
    }

    private func sameOrigin(_ a: URL, _ b: URL) -> Bool {
        a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased() && a.port == b.port
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        guard let target = request.url else { return completionHandler(nil) }
        let sameHost = sameOrigin(target, originalURL)
        if redirects == .sameHostOnly && !sameHost {
            self.response = Self.convert(response, fallback: originalURL)
            return completionHandler(nil)
        }
        // Re-apply our headers (Range matters when a download resumes through a CDN redirect); credentials go
        // to the original host only.
        var next = request
        for (name, value) in headers where name != "Authorization" { next.setValue(value, forHTTPHeaderField: name) }
        next.setValue(sameHost ? headers["Authorization"] : nil, forHTTPHeaderField: "Authorization")
        completionHandler(next)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let converted = Self.convert(response, fallback: originalURL)
        self.response = converted
        do {
            try sink.begin(converted)
            completionHandler(.allow)
        } catch {
            sinkError = error
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard sinkError == nil else { return }
        do {
            try sink.receive(data)
        } catch {
            sinkError = error
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        transportError = error
        done.signal()
    }
}
