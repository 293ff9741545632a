import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MobileLLM

/// One file a pull placed in the model directory.
public struct PulledFile: Sendable, Equatable {
    /// How the file got there.
    public enum Status: String, Sendable {
        /// Downloaded in this run (possibly resuming an earlier partial download).
        case downloaded
        /// Already present with the right size (and SHA-256, where the hub gives one).
        case present
    }

    /// The file's path in the repository (and in the directory).
    public var path: String
    /// Its size in bytes.
    public var bytes: Int
    /// Its SHA-256 when the hub published one (large files stored with Git LFS), else nil.
    public var sha256: String?
    /// Downloaded now or found already present.
    public var status: Status
}

/// What a pull did.
public struct HubPullResult: Sendable {
    /// The repository id, `owner/name`.
    public var repo: String
    /// The revision asked for (a branch, tag or commit).
    public var revision: String
    /// The commit the revision resolved to (every file comes from it).
    public var commit: String
    /// The directory holding the model.
    public var directory: String
    /// The files placed there.
    public var files: [PulledFile]
    /// Repository files left out because inference does not need them.
    public var skipped: [String]

    /// Total size of `files`.
    public var totalBytes: Int { files.reduce(0) { $0 + $1.bytes } }
}

/// Downloads the files a model needs from a Hugging Face hub repository, with the hub's HTTP interface
/// (as huggingface_hub uses it): `GET {endpoint}/api/models/{repo}/revision/{revision}` lists the files and the
/// commit; `HEAD {endpoint}/{repo}/resolve/{commit}/{path}` gives each file's size (`X-Linked-Size` or
/// `Content-Length`), SHA-256 for LFS files (`X-Linked-Etag`) and, for LFS files, a redirect to a CDN, which is
/// fetched without the token.
public struct HubClient: Sendable {
    /// The hub's base URL.
    public var endpoint: URL
    /// A Hugging Face access token, sent as `Authorization: Bearer` to the hub (never to a CDN).
    public var token: String?
    /// The HTTP client.
    public var http: HTTPClient

    /// Files a model directory needs besides its weights.
    public static let modelFiles = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                    "special_tokens_map.json", "chat_template.jinja"]
    /// The sharded-weights index.
    public static let indexFile = "model.safetensors.index.json"

    /// A client for `endpoint` sending `token`.
    public init(endpoint: URL, token: String?, http: HTTPClient = HTTPClient()) {
        self.endpoint = endpoint
        self.token = token
        self.http = http
    }

    /// A client configured like huggingface_hub: `endpoint` if given, else `$HF_ENDPOINT`, else
    /// https://huggingface.co; the token from `$HF_TOKEN`, else `$HUGGING_FACE_HUB_TOKEN`.
    /// - Throws: `MobileLLMError.invalidArgument` for an endpoint that is not an http(s) URL.
    public static func fromEnvironment(endpoint: String? = nil,
                                       environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HubClient {
        let text = [endpoint, environment["HF_ENDPOINT"]].compactMap { $0 }.first { !$0.isEmpty } ?? "https://huggingface.co"
        let trimmed = text.hasSuffix("/") ? String(text.dropLast()) : text
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
            throw MobileLLMError.invalidArgument(name: "--endpoint", problem: "\"\(text)\" is not an http(s) URL")
        }
        let token = [environment["HF_TOKEN"], environment["HUGGING_FACE_HUB_TOKEN"]].compactMap { $0 }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.first { !$0.isEmpty }
        return HubClient(endpoint: url, token: token)
    }

    /// The directory a pull of `repo` goes to by default: `<cache>/hub/<owner>--<name>`.
    public static func defaultDirectory(for repo: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let cache = mobileLLMCacheDirectory(environment: environment)
        return ((cache as NSString).appendingPathComponent("hub") as NSString)
            .appendingPathComponent(repo.replacingOccurrences(of: "/", with: "--"))
    }

    /// Checks a repository id: `owner/name` (or a bare `name`), letters, digits, `.`, `_`, `-`.
    /// - Throws: `MobileLLMError.invalidArgument` naming what is wrong.
    public static func validate(repo: String) throws {
        let parts = repo.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-".unicodeScalars)
        guard (1...2).contains(parts.count), repo.count <= 200,
              parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.unicodeScalars.allSatisfy(allowed.contains) }) else {
            throw MobileLLMError.invalidArgument(name: "REPO_ID",
                                                 problem: "\"\(repo)\" is not a repository id like facebook/MobileLLM-R1-950M (owner/name: letters, digits, '.', '_', '-')")
        }
    }

    /// Downloads `repo` at `revision` into `directory` (created if needed): the config, tokenizer and template
    /// files present and the safetensors weights (the shards the index names, when there is an index).
    /// Partial `.part` files from an interrupted run are resumed; every file is checked for size and, where the
    /// hub gives one, SHA-256, and renamed into place only when it matches.
    /// - Throws: `MobileLLMError` with a message that says what to do (401: set `HF_TOKEN` and accept the
    ///   license; a digest mismatch names the file, the expected and the actual digest).
    public func pull(repo: String, revision: String, into directory: String) throws -> HubPullResult {
        try Self.validate(repo: repo)
        let info = try repositoryInfo(repo: repo, revision: revision)
        let available = Set(info.files)
        guard available.contains("config.json") else {
            throw MobileLLMError.invalidFile(path: "\(endpoint.absoluteString)/\(repo)", field: "config.json",
                                             problem: "the repository has no config.json at revision \(revision), so it is not a transformers model")
        }
        try FileSystem.makeDirectory(directory)
        let cache = mobileLLMCacheDirectory()
        try FileSystem.makeDirectory((cache as NSString).appendingPathComponent("locks"))
        let lockName = "pull-" + SHA256.hex(of: Array(((directory as NSString).standardizingPath).utf8)).prefix(16) + ".lock"
        let lock = try FileLock(path: ((cache as NSString).appendingPathComponent("locks") as NSString).appendingPathComponent(lockName))
        defer { withExtendedLifetime(lock) {} }
        let record = VerificationRecord(path: (cache as NSString).appendingPathComponent("verified.json"))

        var wanted = Self.modelFiles.filter(available.contains)
        let hasIndex = available.contains(Self.indexFile)
        if hasIndex { wanted.append(Self.indexFile) }
        Self.note("pulling \(repo) at \(revision) (commit \(info.commit)) from \(endpoint.absoluteString)\n  into \(directory)")

        var files: [PulledFile] = []
        for path in wanted {
            files.append(try fetch(repo: repo, commit: info.commit, path: path, into: directory, record: record))
        }
        let weights: [String]
        if hasIndex {
            weights = try shards(indexAt: (directory as NSString).appendingPathComponent(Self.indexFile), repo: repo, available: available)
        } else {
            weights = info.files.filter { !$0.contains("/") && $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !weights.isEmpty else {
            throw MobileLLMError.unsupported(path: "\(endpoint.absoluteString)/\(repo)",
                                             feature: "a repository without *.safetensors weights at revision \(revision) (mobilellm reads safetensors)")
        }
        let taken = Set(wanted + weights)
        let skipped = info.files.filter { !taken.contains($0) }.sorted()
        if !skipped.isEmpty {
            let shown = skipped.prefix(8).joined(separator: ", ") + (skipped.count > 8 ? ", … (\(skipped.count - 8) more)" : "")
            Self.note("skipping \(skipped.count) file\(skipped.count == 1 ? "" : "s") inference does not need: \(shown)")
        }
        for path in weights {
            files.append(try fetch(repo: repo, commit: info.commit, path: path, into: directory, record: record))
        }
        return HubPullResult(repo: repo, revision: revision, commit: info.commit, directory: directory, files: files, skipped: skipped)
    }

    // MARK: Steps

    /// The file list and commit of `repo` at `revision`.
    func repositoryInfo(repo: String, revision: String) throws -> (commit: String, files: [String]) {
        let url = try makeURL("\(endpoint.absoluteString)/api/models/\(repo)/revision/\(Self.encode(revision, keepSlashes: false))")
        let data: Data
        do {
            (_, data) = try http.get(url, headers: authorization)
        } catch let error as HTTPStatusError {
            throw explain(error, repo: repo, revision: revision, path: nil)
        }
        guard let object = try? TemplateValue.parse(data, path: url.absoluteString),
              case let .array(siblings)? = object["siblings"] else {
            throw MobileLLMError.invalidFile(path: url.absoluteString, field: "siblings",
                                             problem: "the response is not model info JSON with a \"siblings\" file list")
        }
        var files: [String] = []
        for sibling in siblings {
            guard case let .string(name)? = sibling["rfilename"] else {
                throw MobileLLMError.invalidFile(path: url.absoluteString, field: "siblings[].rfilename", problem: "missing or not a string")
            }
            files.append(name)
        }
        var commit = revision
        if case let .string(sha)? = object["sha"], !sha.isEmpty { commit = sha }
        return (commit, files)
    }

    /// The shard files a `model.safetensors.index.json` names.
    func shards(indexAt path: String, repo: String, available: Set<String>) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try? TemplateValue.parse(data, path: path),
              case let .object(map)? = object["weight_map"] else {
            throw MobileLLMError.invalidFile(path: path, field: "weight_map", problem: "missing or not an object of tensor name to file name")
        }
        var names = Set<String>()
        for (tensor, value) in map {
            guard case let .string(file) = value, Self.isPlainFileName(file), file.hasSuffix(".safetensors") else {
                throw MobileLLMError.invalidFile(path: path, field: "weight_map.\(tensor)", problem: "expected a .safetensors file name in the same directory")
            }
            guard available.contains(file) else {
                throw MobileLLMError.invalidFile(path: path, field: "weight_map.\(tensor)", problem: "names \(file), which \(repo) does not have")
            }
            names.insert(file)
        }
        return names.sorted()
    }

    /// Downloads one file (or confirms it is already there) and returns what it is.
    func fetch(repo: String, commit: String, path: String, into directory: String, record: VerificationRecord) throws -> PulledFile {
        guard Self.isPlainFileName(path) else {
            throw MobileLLMError.invalidFile(path: "\(endpoint.absoluteString)/\(repo)", field: "siblings", problem: "unexpected file name \"\(path)\"")
        }
        let resolve = try makeURL("\(endpoint.absoluteString)/\(repo)/resolve/\(Self.encode(commit, keepSlashes: false))/\(Self.encode(path, keepSlashes: true))")
        let meta: HTTPResponse
        do {
            meta = try http.head(resolve, headers: authorization, redirects: .sameHostOnly)
        } catch let error as HTTPStatusError {
            throw explain(error, repo: repo, revision: commit, path: path)
        }
        let size = (meta.header("x-linked-size") ?? meta.header("content-length")).flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let etag = (meta.header("x-linked-etag") ?? meta.header("etag")).map(Self.normalizeETag)
        let sha256 = etag.flatMap { isSHA256($0) ? $0 : nil }
        var source = meta.url
        if (300..<400).contains(meta.status), let location = meta.header("location") {
            guard let target = URL(string: location, relativeTo: meta.url)?.absoluteURL else {
                throw MobileLLMError.io(path: resolve.absoluteString, reason: "redirect to an invalid Location \"\(location)\"")
            }
            source = target
        }
        let destination = (directory as NSString).appendingPathComponent(path)
        if let existing = FileSystem.size(of: destination), size == nil || existing == size {
            if let sha256 {
                if try record.verify(destination, expected: sha256) == sha256 {
                    return PulledFile(path: path, bytes: existing, sha256: sha256, status: .present)
                }
            } else {
                return PulledFile(path: path, bytes: existing, sha256: nil, status: .present)
            }
        }
        let partial = destination + ".part"
        let sameHost = source.host?.lowercased() == endpoint.host?.lowercased() && source.port == endpoint.port
        do {
            try http.download(source, headers: sameHost ? authorization : [:], to: partial, expectedSize: size, label: path)
        } catch let error as HTTPStatusError {
            throw explain(error, repo: repo, revision: commit, path: path)
        }
        let got = FileSystem.size(of: partial) ?? 0
        if let size, got != size {
            FileSystem.remove(partial)
            throw MobileLLMError.invalidFile(path: "\(repo)/\(path)", field: "size", problem: "expected \(size) bytes, downloaded \(got); the download was deleted")
        }
        if let sha256 {
            let actual = try SHA256.hex(ofFileAt: partial)
            guard actual == sha256 else {
                FileSystem.remove(partial)
                throw MobileLLMError.invalidFile(path: "\(repo)/\(path)", field: "sha256",
                                                 problem: "expected \(sha256) (the hub's X-Linked-Etag), the downloaded file has \(actual); it was deleted")
            }
        }
        try FileSystem.rename(partial, to: destination)
        if let sha256 { record.markVerified(destination, digest: sha256) }
        return PulledFile(path: path, bytes: got, sha256: sha256, status: .downloaded)
    }

    // MARK: Helpers

    var authorization: [String: String] {
        token.map { ["Authorization": "Bearer \($0)"] } ?? [:]
    }

    /// A message for an error status that says what to do about it.
    func explain(_ error: HTTPStatusError, repo: String, revision: String, path: String?) -> MobileLLMError {
        let page = "\(endpoint.absoluteString)/\(repo)"
        let what = path.map { "\(repo)/\($0)" } ?? repo
        let code = error.response.header("x-error-code") ?? ""
        let reason: String
        switch error.status {
        case 401 where token == nil:
            reason = "\(error.statusLine): the repository is gated or private (or does not exist). Set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens) and accept the model's license on \(page), then run the command again"
        case 401:
            reason = "\(error.statusLine): the token in HF_TOKEN was not accepted for \(repo); check the token, and that your account accepted the model's license on \(page)"
        case 403:
            reason = "\(error.statusLine): your token has no access to \(repo)\(code == "GatedRepo" ? " (a gated repository)" : ""); accept the model's license on \(page) (gated models may need approval) and use a token of that account"
        case 404 where code == "RevisionNotFound":
            reason = "\(error.statusLine): revision \"\(revision)\" does not exist in \(repo)"
        case 404 where code == "EntryNotFound" || path != nil:
            reason = "\(error.statusLine): \(repo) has no file \(path ?? "") at \(revision)"
        case 404:
            reason = "\(error.statusLine): no repository \(repo) on \(endpoint.absoluteString)"
        default:
            reason = error.description
        }
        return .io(path: what, reason: reason)
    }

    func makeURL(_ text: String) throws -> URL {
        guard let url = URL(string: text) else { throw MobileLLMError.invalidArgument(name: "url", problem: "cannot form a URL from \"\(text)\"") }
        return url
    }

    /// Percent-encodes a path segment (or a path, keeping `/`).
    static func encode(_ text: String, keepSlashes: Bool) -> String {
        var allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        if keepSlashes { allowed.insert("/") }
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// An ETag without `W/` and quotes, as huggingface_hub normalizes it.
    static func normalizeETag(_ etag: String) -> String {
        var value = etag.trimmingCharacters(in: .whitespaces)
        if value.hasPrefix("W/") { value.removeFirst(2) }
        return value.trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
    }

    /// A file name with no directory part that cannot escape the target directory.
    static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && !name.contains("\\") && name != "." && name != ".." && !name.hasPrefix(".")
            && !name.unicodeScalars.contains { $0.value < 0x20 }
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data("mobilellm: \(text)\n".utf8))
    }
}
