/// Which part of a reasoning model's output a piece of text belongs to (see `ReasoningOptions`).
public enum TextChannel: String, Sendable {
    /// Text inside a thought (between the start and end markers), markers excluded.
    case reasoning
    /// Text outside any thought: the answer. Without `GenerationOptions.reasoning` all text is answer.
    case answer
    /// The text of a start or end marker itself (for example `<think>` or `</think>`), always whole in one piece.
    case marker
}

/// How a reasoning model's thoughts are recognized and bounded (`GenerationOptions.reasoning`).
///
/// The generated text is split into channels by the markers: text after `start` and up to `end` is reasoning, the
/// markers are `marker` pieces, everything else is answer. A generation whose prompt ends inside an open thought
/// (the last `start` in the decoded prompt comes after the last `end`, as when a chat template opens `<think>` in its
/// generation prompt) starts in reasoning mode.
///
/// Token counting: a generated token is a *reasoning token* when a thought is open before its text is read. So the
/// token (or tokens) that complete the end marker count as reasoning tokens, the token that completes the start
/// marker does not, and forced closing tokens never count.
///
/// Budget: once `budget` reasoning tokens have been generated and the thought is still open, the tokens of `closing`
/// (tokenized with special tokens parsed, so `</think>` becomes its special token when the vocabulary has one) are
/// appended as forced tokens: they are fed to the model and appear in the tokens and the text, but are not sampled.
/// Generation then goes on in answer mode, and a `GenerationEvent.reasoningBudget` notes where it happened. With
/// budget 0 a thought open in the prompt is closed before anything is sampled, and a thought the model opens is
/// closed as soon as its start marker is complete.
public struct ReasoningOptions: Sendable, Equatable {
    /// The text that opens a thought.
    public var start: String
    /// The text that closes a thought.
    public var end: String
    /// Most reasoning tokens before the thought is closed by force (nil: unlimited; 0: an empty thought).
    public var budget: Int?
    /// The text forced when the budget runs out. It must contain `end` (normally it ends with `end` and a blank line).
    public var closing: String

    /// The default closing for end marker `end`: a short transition sentence, then `end` on its own line and a blank
    /// line, so that the answer starts on a fresh paragraph: `"\n\nConsidering the limited time, I have to give the
    /// answer now.\n</think>\n\n"` for the default markers.
    public static func defaultClosing(end: String) -> String {
        "\n\nConsidering the limited time, I have to give the answer now.\n" + end + "\n\n"
    }

    /// Options for `<think>`…`</think>` thoughts by default; `closing` defaults to `defaultClosing(end:)`.
    public init(start: String = "<think>", end: String = "</think>", budget: Int? = nil, closing: String? = nil) {
        self.start = start
        self.end = end
        self.budget = budget
        self.closing = closing ?? Self.defaultClosing(end: end)
    }

    /// Whether `text` ends inside an open thought: its last `start` comes after its last `end`. A generation whose
    /// decoded prompt does starts in reasoning mode (hosts use this to turn reasoning tracking on when a chat
    /// template opens a thought in its generation prompt).
    public func endsInsideThought(_ text: String) -> Bool {
        ChannelSplitter.endsInsideThought(text, self)
    }

    /// Throws `invalidArgument` (naming the field) for an empty start or end marker, a negative budget, or a closing
    /// text that does not contain the end marker.
    public func validate() throws {
        guard !start.isEmpty else {
            throw MobileLLMError.invalidArgument(name: "reasoning.start", problem: "expected a non-empty marker")
        }
        guard !end.isEmpty else {
            throw MobileLLMError.invalidArgument(name: "reasoning.end", problem: "expected a non-empty marker")
        }
        if let budget, budget < 0 {
            throw MobileLLMError.invalidArgument(name: "reasoning.budget", problem: "expected a count >= 0, found \(budget)")
        }
        guard closing.contains(literal: end) else {
            throw MobileLLMError.invalidArgument(name: "reasoning.closing",
                                                 problem: "must contain the end marker \(String(reflecting: end)), found \(String(reflecting: closing))")
        }
    }
}

/// One of the most likely tokens at a step, with its log-probability (`TokenLogprob.top`).
public struct TopLogprob: Sendable, Equatable {
    /// The token id.
    public var token: Int32
    /// Its natural-log probability.
    public var logprob: Float

    /// A candidate.
    public init(token: Int32, logprob: Float) {
        self.token = token
        self.logprob = logprob
    }
}

/// The log-probability of a generated token, and optionally the most likely alternatives (`GenerationOptions.logprobs`).
///
/// The distribution is the one the token was actually drawn from, before truncation: the raw logits plus logit bias
/// and bans, with the grammar mask applied, then the repetition/frequency/presence penalties, divided by the
/// temperature (1 for greedy decoding), then log-softmax. Top-k, top-p and min-p are not applied (they only cut the
/// tail; their renormalization would make excluded alternatives invisible), which is llama.cpp's
/// `--n-probs`/vLLM's "processed" convention. With `GenerationOptions.rawLogprobs` it is the log-softmax of the raw
/// logits instead. Tokens that cannot be chosen (-inf) are never listed in `top`. Forced tokens (a reasoning
/// budget's closing text) were not sampled: they get logprob 0 (chosen with certainty) and no alternatives.
public struct TokenLogprob: Sendable, Equatable {
    /// The generated token id.
    public var token: Int32
    /// Its natural-log probability.
    public var logprob: Float
    /// The most likely tokens (up to `GenerationOptions.logprobs`), most likely first (lower id first on ties).
    public var top: [TopLogprob]

    /// A token's log-probability.
    public init(token: Int32, logprob: Float, top: [TopLogprob] = []) {
        self.token = token
        self.logprob = logprob
        self.top = top
    }
}

/// A piece of streamed text (`Session.generateText(prompt:options:onPiece:)`, `BatchEvent.token`).
///
/// Every generated token (but an end-of-sequence token that ends generation) yields at least one piece, possibly
/// with empty text: the first piece of a token carries `token` and `logprob`. When the text released with a token
/// spans channels (say the end of a thought, `</think>` and the start of the answer), it is split into one piece per
/// channel, and the pieces after the first carry `token == nil`. Text released when generation ends (held back for
/// a stop string or a marker) comes in pieces with `token == nil` too. So the pieces with a token correspond one to
/// one to the generated tokens, and the concatenated pieces equal the result's `text`.
///
/// A piece holds whole UTF-8 characters only, and a marker is never split across pieces.
public struct GeneratedPiece: Sendable, Equatable {
    /// The token this piece was released with (nil for further pieces of the same token and for the final rest).
    public var token: Int32?
    /// The text (possibly empty).
    public var text: String
    /// Which part of the output it belongs to.
    public var channel: TextChannel
    /// The token's log-probability when `GenerationOptions.logprobs` is set (first piece of a token only).
    public var logprob: TokenLogprob?
    /// True for a forced token (a reasoning budget's closing text), which was fed but not sampled.
    public var forced: Bool

    /// A piece.
    public init(token: Int32?, text: String, channel: TextChannel, logprob: TokenLogprob? = nil, forced: Bool = false) {
        self.token = token
        self.text = text
        self.channel = channel
        self.logprob = logprob
        self.forced = forced
    }
}

/// Something that happened during a generation without ending it (`TextGenerationResult.events`, `BatchResult.events`).
public struct GenerationEvent: Sendable, Equatable {
    /// What happened.
    public enum Kind: String, Sendable {
        /// The reasoning budget ran out: the closing text was forced, starting at `tokenIndex`.
        case reasoningBudget = "reasoning_budget"
    }

    /// What happened.
    public var kind: Kind
    /// The index in the generated tokens where it happened (for `reasoningBudget`: the first forced token; equal to
    /// the number of tokens generated before it).
    public var tokenIndex: Int

    /// An event.
    public init(kind: Kind, tokenIndex: Int) {
        self.kind = kind
        self.tokenIndex = tokenIndex
    }
}
