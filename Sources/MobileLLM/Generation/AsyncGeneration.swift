import Foundation
import Synchronization

/// One step of a streamed generation.
public struct GenerationPiece: Sendable, Equatable {
    /// The generated token id.
    public let token: Int32
    /// Its text as complete UTF-8 (empty while a character is split across tokens, or when the model has no
    /// tokenizer).
    public let text: String

    /// A piece.
    public init(token: Int32, text: String) {
        self.token = token
        self.text = text
    }
}

/// Shared between a generation's worker thread and the stream's termination handler.
private final class StreamControl: Sendable {
    let stopRequested = Atomic<Bool>(false)
    let running = Atomic<Bool>(true)
}

extension Session {
    /// Generates from `prompt` on a thread of its own and delivers each token as it is chosen:
    ///
    /// ```swift
    /// for try await piece in session.generate([128000, 791, 6864], options: GenerationOptions(maxTokens: 32)) {
    ///     print(piece.token)
    /// }
    /// ```
    ///
    /// The stream ends after the last token (a final end-of-sequence token is not delivered) and throws what
    /// `generate(prompt:options:onToken:)` throws. Ending the iteration early, or cancelling the consuming task,
    /// stops the generation (during prefill too) and leaves the session usable. Use the session for nothing else
    /// until the stream has finished.
    public func generate(_ prompt: [Int32], options: GenerationOptions = GenerationOptions()) -> AsyncThrowingStream<GenerationPiece, Error> {
        let (stream, continuation) = AsyncThrowingStream<GenerationPiece, Error>.makeStream()
        let control = StreamControl()
        continuation.onTermination = { [self] termination in
            guard case .cancelled = termination else { return }
            control.stopRequested.store(true, ordering: .sequentiallyConsistent)
            if control.running.load(ordering: .sequentiallyConsistent) { cancel() }
        }
        let thread = Thread { [self] in
            do {
                _ = try generate(prompt: prompt, options: options) { token in
                    if control.stopRequested.load(ordering: .sequentiallyConsistent) { return false }
                    continuation.yield(GenerationPiece(token: token, text: ""))
                    return true
                }
                control.running.store(false, ordering: .sequentiallyConsistent)
                // A stop request that arrived after the last check would otherwise cancel the session's next call.
                if control.stopRequested.load(ordering: .sequentiallyConsistent) { try? checkCancelled() }
                continuation.finish()
            } catch {
                control.running.store(false, ordering: .sequentiallyConsistent)
                continuation.finish(throwing: error)
            }
        }
        thread.start()
        return stream
    }
}
