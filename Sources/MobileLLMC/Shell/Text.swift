// The text half of the C ABI: tokenizer, streaming detokenizer and chat templates, over Model.tokenizer() and
// Model.chatTemplate().
import CMobileLLMABI
import MobileLLM
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Android)
import Android
#elseif canImport(Darwin)
import Darwin
#endif

/// A streaming detokenizer and the buffer its latest piece lives in.
final class DetokenizerBox: Exclusive, @unchecked Sendable {
    let owner: ModelBox
    var detokenizer: StreamingDetokenizer
    /// The latest piece, NUL-terminated; valid until the next call on this detokenizer.
    private var piece: [CChar] = [0]

    init(owner: ModelBox, detokenizer: StreamingDetokenizer) {
        self.owner = owner
        self.detokenizer = detokenizer
        super.init(kind: "mobilellm_detokenizer")
    }

    /// Keeps `text` and hands its address out.
    func publish(_ text: String, _ outPiece: UnsafeMutablePointer<UnsafePointer<CChar>?>, _ outLength: UnsafeMutablePointer<Int>) {
        piece = Array(text.utf8CString)
        outLength.pointee = piece.count - 1
        outPiece.pointee = piece.withUnsafeBufferPointer { UnsafePointer($0.baseAddress) }
    }
}

let detokenizerTable = HandleTable<DetokenizerBox>(kind: "mobilellm_detokenizer", tag: 4)

extension Model {
    /// The tokenizer, with a missing one reported as NO_TOKENIZER naming the model.
    func requireTokenizer() throws -> Tokenizer { try tokenizer() }
}

/// Longest text mobilellm_tokenize() accepts (1 GiB): a larger text_length is a caller bug (say an uninitialised
/// or negative length), refused before a byte is read.
let maximumTextLength = 1 << 30

/// See include/mobilellm.h.
@_cdecl("mobilellm_tokenize")
public func mobilellm_tokenize(_ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLength: Int, _ addSpecial: Bool,
                               _ parseSpecial: Bool, _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                               _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_tokenize") {
        let box = try modelTable.lookup(model, "model")
        guard outCount != nil else { throw ABIError.null("out_count") }
        let string = try textArgument(text, textLength)
        let ids = try box.model.requireTokenizer().encode(string, addSpecial: addSpecial, parseSpecial: parseSpecial)
        try copyOut(ids, to: tokens, capacity: capacity, count: outCount, name: "tokens", unit: "tokens")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_session_tokenize_prompt")
public func mobilellm_session_tokenize_prompt(_ session: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLength: Int,
                                              _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                              _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_session_tokenize_prompt") {
        let box = try sessionTable.lookup(session, "session")
        guard outCount != nil else { throw ABIError.null("out_count") }
        let string = try textArgument(text, textLength)
        let ids = try box.exclusively { try box.session.promptTokens(string) }
        try copyOut(ids, to: tokens, capacity: capacity, count: outCount, name: "tokens", unit: "tokens")
    }
}

/// The `text_length` bytes at `text` as a validated UTF-8 string (NULL allowed for length 0).
func textArgument(_ text: UnsafePointer<CChar>?, _ textLength: Int) throws -> String {
    let length = try count(textLength, "text_length")
    guard length <= maximumTextLength else {
        throw ABIError.invalidArgument("text_length", "expected at most \(maximumTextLength) bytes, found \(length)")
    }
    guard length > 0 else { return "" }
    guard let text else { throw ABIError.null("text") }
    return try text.withMemoryRebound(to: UInt8.self, capacity: length) {
        try validatedUTF8(UnsafeBufferPointer(start: $0, count: length), "text")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_detokenize")
public func mobilellm_detokenize(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokens: Int, _ skipSpecial: Bool,
                                 _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_detokenize") {
        let box = try modelTable.lookup(model, "model")
        let n = try count(nTokens, "n_tokens")
        guard n <= 1 << 28 else { throw ABIError.invalidArgument("n_tokens", "expected at most \(1 << 28), found \(n)") }
        var ids: [Int32] = []
        if n > 0 {
            guard let tokens else { throw ABIError.null("tokens") }
            ids = Array(UnsafeBufferPointer(start: tokens, count: n))
        }
        let tokenizer = try box.model.requireTokenizer()
        for (index, id) in ids.enumerated() where id < 0 || Int(id) >= tokenizer.vocabularySize {
            throw ABIError.invalidArgument("tokens[\(index)]", "token id \(id) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
        }
        let text = try tokenizer.decode(ids, skipSpecial: skipSpecial)
        try copyOut(text: text, to: buffer, capacity: capacity, length: outLength, name: "buffer")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_token_to_piece")
public func mobilellm_token_to_piece(_ model: OpaquePointer?, _ token: Int32, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                     _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_token_to_piece") {
        let box = try modelTable.lookup(model, "model")
        guard outLength != nil else { throw ABIError.null("out_length") }
        _ = try count(capacity, "capacity")
        let tokenizer = try box.model.requireTokenizer()
        guard token >= 0, Int(token) < tokenizer.vocabularySize else {
            throw ABIError.invalidArgument("token", "token id \(token) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
        }
        try copyOut(bytes: try tokenizer.tokenBytes(token), to: buffer, capacity: capacity, length: outLength, name: "buffer")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_token_is_special")
public func mobilellm_token_is_special(_ model: OpaquePointer?, _ token: Int32, _ outSpecial: UnsafeMutablePointer<Bool>?) -> Int32 {
    guarded("mobilellm_token_is_special") {
        let box = try modelTable.lookup(model, "model")
        guard let outSpecial else { throw ABIError.null("out_special") }
        let tokenizer = try box.model.requireTokenizer()
        guard token >= 0, Int(token) < tokenizer.vocabularySize else {
            throw ABIError.invalidArgument("token", "token id \(token) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
        }
        outSpecial.pointee = tokenizer.isSpecial(token)
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_model_special_token_ids")
public func mobilellm_model_special_token_ids(_ model: OpaquePointer?, _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                                              _ outCount: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_model_special_token_ids") {
        let box = try modelTable.lookup(model, "model")
        let special = try box.model.requireTokenizer().addedTokens.filter(\.special).map(\.id)
        try copyOut(special, to: ids, capacity: capacity, count: outCount, name: "ids", unit: "ids")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_detokenizer_create")
public func mobilellm_detokenizer_create(_ model: OpaquePointer?, _ skipSpecial: Bool,
                                         _ outDetokenizer: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded("mobilellm_detokenizer_create") {
        let box = try modelTable.lookup(model, "model")
        guard let outDetokenizer else { throw ABIError.null("out_detokenizer") }
        let detokenizer = try box.model.requireTokenizer().makeStreamingDetokenizer(skipSpecial: skipSpecial)
        outDetokenizer.pointee = detokenizerTable.insert(DetokenizerBox(owner: box, detokenizer: detokenizer))
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_detokenizer_free")
public func mobilellm_detokenizer_free(_ detokenizer: OpaquePointer?) -> Int32 {
    guarded("mobilellm_detokenizer_free") { try detokenizerTable.remove(detokenizer, "detokenizer") }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_detokenizer_push")
public func mobilellm_detokenizer_push(_ detokenizer: OpaquePointer?, _ token: Int32, _ outPiece: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                       _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_detokenizer_push") {
        let box = try detokenizerTable.lookup(detokenizer, "detokenizer")
        guard let outPiece else { throw ABIError.null("out_piece") }
        guard let outLength else { throw ABIError.null("out_length") }
        try box.exclusively {
            let vocabulary = box.detokenizer.tokenizer.vocabularySize
            guard token >= 0, Int(token) < vocabulary else {
                throw ABIError.invalidArgument("token", "token id \(token) is outside the vocabulary (0..<\(vocabulary))")
            }
            let text = try box.detokenizer.push(token)
            box.publish(text, outPiece, outLength)
        }
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_detokenizer_flush")
public func mobilellm_detokenizer_flush(_ detokenizer: OpaquePointer?, _ outPiece: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                        _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_detokenizer_flush") {
        let box = try detokenizerTable.lookup(detokenizer, "detokenizer")
        guard let outPiece else { throw ABIError.null("out_piece") }
        guard let outLength else { throw ABIError.null("out_length") }
        try box.exclusively { box.publish(box.detokenizer.flush(), outPiece, outLength) }
    }
}

extension mobilellm_chat_params {
    static var defaults: mobilellm_chat_params {
        var params = mobilellm_chat_params()
        params.struct_size = UInt32(MemoryLayout<mobilellm_chat_params>.size)
        params.add_generation_prompt = true
        return params
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_chat_params_init")
public func mobilellm_chat_params_init(_ params: UnsafeMutablePointer<mobilellm_chat_params>?) {
    params?.pointee = .defaults
}

/// Parses a JSON argument as template values, naming the argument in errors.
private func templateJSON(_ pointer: UnsafePointer<CChar>, _ name: String) throws -> TemplateValue {
    let text = try string(pointer, name)
    do {
        return try TemplateValue.parse(Array(text.utf8), path: name)
    } catch let error as MobileLLMError {
        throw ABIError.invalidArgument(name, "not valid JSON: \(error.description)")
    }
}

/// See include/mobilellm.h.
@_cdecl("mobilellm_apply_chat_template")
public func mobilellm_apply_chat_template(_ model: OpaquePointer?, _ messages: UnsafePointer<mobilellm_chat_message>?, _ nMessages: Int,
                                          _ params: UnsafePointer<mobilellm_chat_params>?, _ buffer: UnsafeMutablePointer<CChar>?,
                                          _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded("mobilellm_apply_chat_template") {
        let box = try modelTable.lookup(model, "model")
        guard outLength != nil else { throw ABIError.null("out_length") }
        let p = try readParams(params, defaults: .defaults, minimumSize: VersionOneSize.chatParams, name: "params")
        var values: [TemplateValue] = []
        if let json = p.messages_json {
            guard case let .array(items) = try templateJSON(json, "params->messages_json") else {
                throw ABIError.invalidArgument("params->messages_json", "expected a JSON array of message objects")
            }
            values = items
        } else {
            let n = try count(nMessages, "n_messages")
            guard n <= 1 << 20 else { throw ABIError.invalidArgument("n_messages", "expected at most \(1 << 20), found \(n)") }
            if n > 0 {
                guard let messages else { throw ABIError.null("messages") }
                for index in 0..<n {
                    let role = try string(messages[index].role, "messages[\(index)].role")
                    let content = try string(messages[index].content, "messages[\(index)].content")
                    values.append(.message(role: role, content: content))
                }
            }
        }
        var variables: [String: TemplateValue] = [:]
        if let json = p.variables_json {
            guard case let .object(members) = try templateJSON(json, "params->variables_json") else {
                throw ABIError.invalidArgument("params->variables_json", "expected a JSON object of template variables")
            }
            for member in members { variables[member.key] = member.value }
        }
        let addGenerationPrompt = readBool(p, \.add_generation_prompt)
        let modelTemplate = try box.model.chatTemplate()
        let text: String
        if let override = p.template_override {
            let source = try string(override, "params->template_override")
            let template = try ModelChatTemplate(source: source, name: "template_override", bosToken: modelTemplate.bosToken,
                                                 eosToken: modelTemplate.eosToken, otherSpecialTokens: modelTemplate.otherSpecialTokens)
            text = try template.render(messages: values, addGenerationPrompt: addGenerationPrompt, variables: variables)
        } else {
            text = try modelTemplate.render(messages: values, addGenerationPrompt: addGenerationPrompt, variables: variables)
        }
        try copyOut(text: text, to: buffer, capacity: capacity, length: outLength, name: "buffer")
    }
}
