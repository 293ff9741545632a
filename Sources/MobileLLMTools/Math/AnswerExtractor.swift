import Foundation

/// Finds the final answer in a model's response, in the Qwen2.5-Math harness's order (`extract_answer`, which
/// MobileLLM-R1's evaluation uses):
///
/// 1. Minerva style: the text between `final answer is $` and `$. I hope`;
/// 2. the content of the last `\boxed{...}` (`BoxedAnswer.lastBoxedContent`); a last `\boxed{` that never closes
///    (a response cut off by the token limit) gives everything after it, as the harness does;
/// 3. the text after the last `he answer is` (`The answer is 18.`), else after the last `final answer is`;
/// 4. the last number in the response, with commas removed.
///
/// The harness looks for the bare word `boxed`; here the box needs its backslash (`\boxed`, or `\fbox`).
public enum AnswerExtractor {
    /// Which rule found the answer.
    public enum Method: String, Sendable, Codable {
        /// `final answer is $...$. I hope`.
        case minerva
        /// The last closed `\boxed{...}`.
        case boxed
        /// The text after a last `\boxed{` that never closes.
        case unclosedBoxed = "unclosed_boxed"
        /// The text after `he answer is` / `final answer is`.
        case answerIs = "answer_is"
        /// The last number.
        case lastNumber = "last_number"
    }

    /// An extracted answer and the rule that found it.
    public struct Extraction: Sendable, Equatable {
        /// The answer text, trimmed (not yet normalized).
        public let text: String
        /// The rule that found it.
        public let method: Method
    }

    /// The answer in `response`, or nil when the response has no box, no answer phrase and no number.
    public static func extract(from response: String) -> Extraction? {
        if let start = response.range(of: "final answer is $"), let end = response[start.upperBound...].range(of: "$. I hope") {
            return Extraction(text: String(response[start.upperBound..<end.lowerBound]).trimmingSpaces(), method: .minerva)
        }
        if let boxed = BoxedAnswer.lastBoxedContent(in: response) {
            return Extraction(text: boxed.trimmingSpaces(), method: .boxed)
        }
        if let open = response.range(of: "\\boxed{", options: .backwards) {
            return Extraction(text: String(response[open.upperBound...]).trimmingSpaces(), method: .unclosedBoxed)
        }
        for phrase in ["he answer is", "final answer is"] {
            if let found = response.range(of: phrase, options: .backwards) {
                return Extraction(text: String(response[found.upperBound...]).trimmingSpaces(), method: .answerIs)
            }
        }
        let withoutCommas = response.replacingOccurrences(ofAll: [",": ""])
        guard let last = withoutCommas.matches(of: #/-?\d*\.?\d+/#).last else { return nil }
        return Extraction(text: String(last.output), method: .lastNumber)
    }
}
