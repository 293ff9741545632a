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
    /// Each piece carries the token and, when the model has a tokenizer, the text it completes (whole UTF-8
    /// characters from a streaming detokenizer). The stream ends after the last token (a final end-of-sequence
    /// token is not delivered) and throws what `generate(prompt:options:onToken:)` throws. Ending the iteration
    /// early, or cancelling the consuming task, stops the generation (during prefill too) and leaves the session
    /// usable. Use the session for nothing else until the stream has finished.
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
                var detokenizer = model.tokenizerFile == nil ? nil : try? model.tokenizer().makeStreamingDetokenizer(skipSpecial: false)
                _ = try run {
                    // Checked inside the run: a stop request is either seen here or finds the run going and cancels it.
                    guard !control.stopRequested.load(ordering: .sequentiallyConsistent) else { throw MobileLLMError.cancelled }
                    return try generate(prompt: prompt, options: options) { token in
                        if control.stopRequested.load(ordering: .sequentiallyConsistent) { return false }
                        let text = (try? detokenizer?.push(token)) ?? ""
                        continuation.yield(GenerationPiece(token: token, text: text))
                        return true
                    }
                }
                control.running.store(false, ordering: .sequentiallyConsistent)
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

extension Session {
    /// Generates from text: `prompt` is tokenized with the model's tokenizer (special tokens such as
    /// `<|eot_id|>` written in it are parsed, so chat-template output works; BOS is added on an empty session unless
    /// the text already starts with it), then streamed like `generate(_:options:)` with the text of each piece.
    ///
    /// ```swift
    /// let prompt = try model.applyChatTemplate([ChatMessage(role: "user", content: "Hi!")])
    /// for try await piece in try session.generate(prompt) { print(piece.text, terminator: "") }
    /// ```
    ///
    /// Throws `tokenizerMissing` at once when the model has no tokenizer.
    public func generate(_ prompt: String, options: GenerationOptions = GenerationOptions()) throws -> AsyncThrowingStream<GenerationPiece, Error> {
        generate(try promptTokens(prompt), options: options)
    }

    /// The ids of `prompt` as the next input of this session: tokenized with the model's tokenizer, special tokens
    /// written in the text parsed (so chat-template output works), and BOS added when the session is empty unless the
    /// text already starts with the BOS token. This is the prompt rule of every host (C, Python, the CLI).
    ///
    /// Throws `tokenizerMissing` when the model has no tokenizer.
    public func promptTokens(_ prompt: String) throws -> [Int32] {
        let tokenizer = try model.tokenizer()
        let startsWithBOS = tokenizer.bosToken.map { !$0.isEmpty && prompt.hasPrefix($0) } ?? false
        return tokenizer.encode(prompt, addSpecial: position == 0 && !startsWithBOS, parseSpecial: true)
    }
}
