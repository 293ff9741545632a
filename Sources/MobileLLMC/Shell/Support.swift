// Infrastructure of the C ABI shell: handle tables, thread-local error text, status mapping and the wrapper every
// exported function runs its body in. No engine logic lives here.
import CMobileLLMABI
import MobileLLM
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errors

/// A failure to report through the ABI: a status code and the message `mobilellm_last_error()` returns.
struct ABIError: Error {
    let status: Int32
    let message: String

    init(status: Int32, message: String) {
        self.status = status
        self.message = message
    }

    static func invalidArgument(_ name: String, _ problem: String) -> ABIError {
        ABIError(status: Int32(MOBILELLM_ERROR_INVALID_ARGUMENT.rawValue), message: "invalid argument '\(name)': \(problem)")
    }

    static func null(_ name: String) -> ABIError {
        invalidArgument(name, "expected a non-NULL pointer, found NULL")
    }

    static func invalidHandle(_ kind: String, _ name: String, _ handle: OpaquePointer?) -> ABIError {
        guard let handle else {
            return ABIError(status: Int32(MOBILELLM_ERROR_INVALID_HANDLE.rawValue), message: "invalid handle '\(name)': expected a \(kind) handle, found NULL")
        }
        let value = String(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle))), radix: 16)
        return ABIError(status: Int32(MOBILELLM_ERROR_INVALID_HANDLE.rawValue),
                        message: "invalid handle '\(name)': 0x\(value) is not a live \(kind) (freed, or not from this library)")
    }

    static func bufferTooSmall(_ name: String, needed: Int, capacity: Int, unit: String) -> ABIError {
        ABIError(status: Int32(MOBILELLM_ERROR_BUFFER_TOO_SMALL.rawValue),
                 message: "buffer '\(name)' too small: needs \(needed) \(unit), capacity is \(capacity)")
    }

    static func busy(_ kind: String) -> ABIError {
        ABIError(status: Int32(MOBILELLM_ERROR_BUSY.rawValue),
                 message: "\(kind) is in use by another thread (a \(kind) is used by one thread at a time)")
    }

    /// The status and message for an engine error.
    init(_ error: MobileLLMError) {
        let code: mobilellm_status_code
        switch error {
        case .fileNotFound: code = MOBILELLM_ERROR_FILE_NOT_FOUND
        case .invalidFile: code = MOBILELLM_ERROR_INVALID_FILE
        case .unsupported: code = MOBILELLM_ERROR_UNSUPPORTED
        case .invalidArgument: code = MOBILELLM_ERROR_INVALID_ARGUMENT
        case .contextFull: code = MOBILELLM_ERROR_CONTEXT_FULL
        case .tokenizerMissing: code = MOBILELLM_ERROR_NO_TOKENIZER
        case .cancelled: code = MOBILELLM_ERROR_CANCELLED
        case .io: code = MOBILELLM_ERROR_IO
        case .template: code = MOBILELLM_ERROR_TEMPLATE
        case .grammar, .jsonSchema: code = MOBILELLM_ERROR_GRAMMAR
        @unknown default: code = MOBILELLM_ERROR_INVALID_ARGUMENT
        }
        self.init(status: Int32(code.rawValue), message: error.description)
    }
}

/// Thread-local storage of the last error message: a malloc'ed C string per thread, freed at thread exit.
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        _ = pthread_key_create(&key) { pointer in free(pointer) }
        return key
    }()

    /// An empty string returned when the thread has no message.
    nonisolated(unsafe) static let empty: UnsafePointer<CChar> = {
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return UnsafePointer(pointer)
    }()

    static var current: UnsafePointer<CChar> {
        guard let pointer = pthread_getspecific(key) else { return empty }
        return UnsafePointer(pointer.assumingMemoryBound(to: CChar.self))
    }

    static func set(_ message: String) {
        let old = pthread_getspecific(key)
        let copy = strdup(message)
        _ = pthread_setspecific(key, copy)
        free(old)
    }

    static func clear() {
        guard let old = pthread_getspecific(key) else { return }
        _ = pthread_setspecific(key, nil)
        free(old)
    }
}

/// Runs the body of exported function `function`, turning every thrown error into a status and this thread's
/// last-error message, and logging failures at debug level.
@inline(__always)
/// Runs `body`, naming the engine's argument errors by the C fields they came from (`fields` maps the Swift
/// parameter name, e.g. "defaultContextLength", to the C one, e.g. "params->default_context_length").
func translatingArguments<T>(_ fields: [String: String], _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let MobileLLMError.invalidArgument(name, problem) where fields[name] != nil {
        throw ABIError.invalidArgument(fields[name] ?? name, problem)
    }
}

func guarded(_ function: StaticString, _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        LastError.clear()
        return Int32(MOBILELLM_OK.rawValue)
    } catch {
        let failure: ABIError
        switch error {
        case let error as ABIError: failure = error
        case let error as MobileLLMError: failure = ABIError(error)
        default: failure = ABIError(status: Int32(MOBILELLM_ERROR_INTERNAL.rawValue), message: "internal error: \(error)")
        }
        let message = "\(function): \(failure.message)"
        // Logged first: calls a log callback makes must not replace this thread's message.
        MobileLLMLog.log(.debug, message)
        LastError.set(message)
        return failure.status
    }
}

/// Runs `body`, turning the engine's bare `cancelled` into a CANCELLED status whose message says why and what
/// became of the work (`explanation`).
func explainingCancel<T>(_ explanation: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch MobileLLMError.cancelled {
        throw ABIError(status: Int32(MOBILELLM_ERROR_CANCELLED.rawValue), message: "cancelled: \(explanation)")
    }
}

// MARK: - Handles

private let nextHandleID = Atomic<UInt>(1)

/// Live objects of one kind, keyed by the opaque handle value given to C. Handle values are never reused, so a
/// freed handle stays invalid forever; nothing is ever dereferenced through them.
final class HandleTable<Object: AnyObject & Sendable>: Sendable {
    private let objects = Locked<[UInt: Object]>([:])
    private let tag: UInt
    let kind: String

    init(kind: String, tag: UInt) {
        self.kind = kind
        self.tag = tag
    }

    func insert(_ object: Object) -> OpaquePointer? {
        let id = nextHandleID.wrappingAdd(1, ordering: .relaxed).oldValue
        let value = id << 4 | tag
        objects.withLock { $0[value] = object }
        return OpaquePointer(bitPattern: value)
    }

    /// The object of `handle`, retained for the caller, or an INVALID_HANDLE error naming argument `name`.
    func lookup(_ handle: OpaquePointer?, _ name: String) throws -> Object {
        guard let handle else { throw ABIError.invalidHandle(kind, name, nil) }
        let value = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))
        guard value & 0xF == tag, let object = objects.withLock({ $0[value] }) else {
            throw ABIError.invalidHandle(kind, name, handle)
        }
        return object
    }

    /// Removes `handle` (NULL: nothing); an unknown handle is an error.
    func remove(_ handle: OpaquePointer?, _ name: String) throws {
        guard let handle else { return }
        let value = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(handle)))
        let removed = value & 0xF == tag ? objects.withLock { $0.removeValue(forKey: value) } : nil
        guard removed != nil else { throw ABIError.invalidHandle(kind, name, handle) }
    }
}

/// Something one thread at a time may use: a second concurrent user gets BUSY instead of a data race.
class Exclusive: @unchecked Sendable {
    private let inUse = Atomic<Bool>(false)
    let kind: String

    init(kind: String) { self.kind = kind }

    func exclusively<T>(_ body: () throws -> T) throws -> T {
        guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw ABIError.busy(kind)
        }
        defer { inUse.store(false, ordering: .releasing) }
        return try body()
    }
}

// MARK: - Arguments

/// The C functions' `n_threads` for a session or batch of `model`: 0 means every thread of the model's pool, 1 ...
/// the pool's size that many; anything else is INVALID_ARGUMENT naming `n_threads`.
func threadCount(_ threads: Int32, of model: Model) throws -> Int {
    let available = model.threadCount
    guard threads >= 0, Int(threads) <= available else {
        throw ABIError.invalidArgument("n_threads", "expected 0 (all \(available) threads of the model's pool) or 1...\(available), found \(threads)")
    }
    return threads == 0 ? available : Int(threads)
}

/// A C size_t (imported as Int) checked to be a count; sizes above Int.max arrive negative.
func count(_ value: Int, _ name: String) throws -> Int {
    guard value >= 0 else {
        throw ABIError.invalidArgument(name, "\(UInt(bitPattern: value)) is not a plausible size")
    }
    return value
}

/// A non-NULL C string as a Swift String; invalid UTF-8 is an error naming the byte offset.
func string(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    guard let pointer else { throw ABIError.null(name) }
    let length = strlen(pointer)
    return try pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
        try validatedUTF8(UnsafeBufferPointer(start: $0, count: length), name)
    }
}

/// Bytes as a String, or INVALID_UTF8 naming the offset of the first bad byte.
func validatedUTF8(_ bytes: UnsafeBufferPointer<UInt8>, _ name: String) throws -> String {
    var iterator = bytes.makeIterator()
    var decoder = UTF8()
    var offset = 0
    var scalars = String.UnicodeScalarView()
    loop: while true {
        switch decoder.decode(&iterator) {
        case let .scalarValue(scalar):
            scalars.append(scalar)
            offset += UTF8.width(scalar)
        case .emptyInput:
            break loop
        case .error:
            throw ABIError(status: Int32(MOBILELLM_ERROR_INVALID_UTF8.rawValue),
                           message: "invalid UTF-8 in '\(name)' at byte offset \(offset)")
        }
    }
    return String(scalars)
}

/// Reads a caller's params struct: NULL gives `defaults`; otherwise struct_size must be at least `minimumSize`
/// (the version-1 size) and only the bytes the caller declared are read, the rest keeps the defaults.
func readParams<T>(_ pointer: UnsafePointer<T>?, defaults: T, minimumSize: Int, name: String) throws -> T {
    guard let pointer else { return defaults }
    let raw = UnsafeRawPointer(pointer)
    let size = Int(raw.loadUnaligned(as: UInt32.self))
    guard size >= minimumSize else {
        throw ABIError.invalidArgument("\(name)->struct_size", "expected at least \(minimumSize) (the version-1 size; fill the struct with its _params_init function), found \(size)")
    }
    guard size <= 65536 else {
        throw ABIError.invalidArgument("\(name)->struct_size", "\(size) looks uninitialised (expected sizeof the struct; fill it with its _params_init function)")
    }
    var value = defaults
    withUnsafeMutableBytes(of: &value) { destination in
        destination.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: min(size, MemoryLayout<T>.size)))
    }
    return value
}

/// Reads a C bool field byte by byte (any non-zero byte is true), so a garbage byte cannot make an invalid Bool.
func readBool<T>(_ value: T, _ field: PartialKeyPath<T>) -> Bool {
    guard let offset = MemoryLayout<T>.offset(of: field) else { return false }
    return withUnsafeBytes(of: value) { $0[offset] != 0 }
}

/// Writes the defaults `value` into a caller's params struct of `size` bytes (at most the current layout), with
/// struct_size set to the bytes written, so a struct of an older, shorter layout is never overrun.
func writeDefaults<T>(_ value: T, to pointer: UnsafeMutablePointer<T>?, size: Int) {
    guard let pointer else { return }
    let count = min(size, MemoryLayout<T>.size)
    withUnsafeBytes(of: value) { source in
        guard let base = source.baseAddress else { return }
        UnsafeMutableRawPointer(pointer).copyMemory(from: base, byteCount: count)
    }
    UnsafeMutableRawPointer(pointer).storeBytes(of: UInt32(count), as: UInt32.self)
}

/// Writes `value` into a caller's output struct, at most its declared struct_size bytes (at least `minimumSize`).
func writeOutput<T>(_ value: T, to pointer: UnsafeMutablePointer<T>?, minimumSize: Int, name: String) throws {
    guard let pointer else { throw ABIError.null(name) }
    let raw = UnsafeMutableRawPointer(pointer)
    let size = Int(raw.loadUnaligned(as: UInt32.self))
    guard size >= minimumSize, size <= 65536 else {
        throw ABIError.invalidArgument("\(name)->struct_size", "expected at least \(minimumSize) (set it to sizeof the struct), found \(size)")
    }
    withUnsafeBytes(of: value) { source in
        // Keep the caller's struct_size; copy the rest.
        let count = min(size, MemoryLayout<T>.size)
        if count > 4, let base = source.baseAddress { (raw + 4).copyMemory(from: base + 4, byteCount: count - 4) }
    }
}

/// Copies `items` into a caller-owned array of `capacity` elements and stores the count; BUFFER_TOO_SMALL (with
/// the count stored, the one output written on failure) when they do not fit.
func copyOut<T>(_ items: [T], to buffer: UnsafeMutablePointer<T>?, capacity rawCapacity: Int, count out: UnsafeMutablePointer<Int>?,
                name: String, unit: String) throws {
    guard let out else { throw ABIError.null("out_count") }
    let capacity = try count(rawCapacity, "capacity")
    guard items.count <= capacity else {
        out.pointee = items.count
        throw ABIError.bufferTooSmall(name, needed: items.count, capacity: capacity, unit: unit)
    }
    if !items.isEmpty {
        guard let buffer else { throw ABIError.null(name) }
        items.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { buffer.update(from: base, count: source.count) }
        }
    }
    out.pointee = items.count
}

/// Copies bytes plus a NUL into a caller-owned buffer and stores the length (without the NUL); BUFFER_TOO_SMALL
/// stores the length too.
func copyOut<Bytes: Collection<UInt8>>(bytes: Bytes, to buffer: UnsafeMutablePointer<CChar>?, capacity rawCapacity: Int,
                                       length out: UnsafeMutablePointer<Int>?, name: String) throws {
    guard let out else { throw ABIError.null("out_length") }
    let capacity = try count(rawCapacity, "capacity")
    guard bytes.count + 1 <= capacity else {
        out.pointee = bytes.count
        throw ABIError.bufferTooSmall(name, needed: bytes.count + 1, capacity: capacity, unit: "bytes (the text and its NUL)")
    }
    guard let buffer else { throw ABIError.null(name) }
    var index = 0
    for byte in bytes {
        buffer[index] = CChar(bitPattern: byte)
        index += 1
    }
    buffer[index] = 0
    out.pointee = bytes.count
}

/// Copies text plus a NUL into a caller-owned buffer and stores the length (without the NUL).
func copyOut(text: String, to buffer: UnsafeMutablePointer<CChar>?, capacity: Int, length out: UnsafeMutablePointer<Int>?,
             name: String) throws {
    try copyOut(bytes: text.utf8, to: buffer, capacity: capacity, length: out, name: name)
}
