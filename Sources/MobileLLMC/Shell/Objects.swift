// The objects behind the C handles and the tables that hold them.
import CMobileLLMABI
import MobileLLM

/// A loaded model as the C ABI sees it.
final class ModelBox: Sendable {
    let model: Model

    init(model: Model) {
        self.model = model
    }
}

/// A session plus what the C ABI remembers between calls. Keeps its model alive.
final class SessionBox: Exclusive, @unchecked Sendable {
    let session: Session
    let owner: ModelBox
    /// The last position's logits from the latest eval (nil when there are none). Touched only exclusively.
    var lastLogits: [Float]?

    init(session: Session, owner: ModelBox) {
        self.session = session
        self.owner = owner
        super.init(kind: "mobilellm_session")
    }
}

/// A sampler and its random state.
final class SamplerBox: Exclusive, @unchecked Sendable {
    var sampler: Sampler

    init(sampler: Sampler) {
        self.sampler = sampler
        super.init(kind: "mobilellm_sampler")
    }
}

let modelTable = HandleTable<ModelBox>(kind: "mobilellm_model", tag: 1)
let sessionTable = HandleTable<SessionBox>(kind: "mobilellm_session", tag: 2)
let samplerTable = HandleTable<SamplerBox>(kind: "mobilellm_sampler", tag: 3)

/// Version-1 sizes of the params structs: the smallest struct_size accepted. Fixed forever for version 1; when a
/// struct grows, MemoryLayout gives the new size but these stay (see Sources/MobileLLMC/Header/layout.c).
enum VersionOneSize {
    static let modelParams = 40
    static let modelInfo = 52
    static let sessionParams = 12
    static let samplerParams = 56
    static let generateParams = 48
    static let generateResult = 16
    static let chatParams = 32
    /// Appended in ABI v1 (first released at this size).
    static let batchParams = 20
    /// Appended in ABI v1 (first released at this size).
    static let memoryEstimate = 64
}

extension mobilellm_model_params {
    static var defaults: mobilellm_model_params {
        var params = mobilellm_model_params()
        params.struct_size = UInt32(MemoryLayout<mobilellm_model_params>.size)
        return params
    }
}

extension mobilellm_session_params {
    static var defaults: mobilellm_session_params {
        var params = mobilellm_session_params()
        params.struct_size = UInt32(MemoryLayout<mobilellm_session_params>.size)
        params.kv_cache_type = Int32(MOBILELLM_KV_AUTO.rawValue)
        return params
    }
}

extension mobilellm_sampler_params {
    static var defaults: mobilellm_sampler_params {
        var params = mobilellm_sampler_params()
        params.struct_size = UInt32(MemoryLayout<mobilellm_sampler_params>.size)
        params.temperature = 0
        params.top_k = 0
        params.top_p = 1
        params.min_p = 0
        params.repetition_penalty = 1
        params.frequency_penalty = 0
        params.presence_penalty = 0
        params.penalty_window = -1
        params.seed = 0
        params.use_seed = false
        return params
    }

    /// The engine's parameters; throws INVALID_ARGUMENT naming a field out of range.
    func engineParameters() throws -> SamplingParameters {
        guard penalty_window >= -1 else {
            throw ABIError.invalidArgument("sampler_params->penalty_window", "expected -1 (all) or a count >= 0, found \(penalty_window)")
        }
        let parameters = SamplingParameters(
            temperature: temperature, topK: Int(top_k), topP: top_p, minP: min_p, repetitionPenalty: repetition_penalty,
            frequencyPenalty: frequency_penalty, presencePenalty: presence_penalty,
            penaltyWindow: penalty_window < 0 ? nil : Int(penalty_window),
            seed: readBool(self, \.use_seed) ? seed : nil)
        do {
            try parameters.validate()
        } catch let MobileLLMError.invalidArgument(name, problem) {
            throw ABIError.invalidArgument("sampler_params->\(name)", problem)
        }
        return parameters
    }
}

extension mobilellm_generate_params {
    static var defaults: mobilellm_generate_params {
        var params = mobilellm_generate_params()
        params.struct_size = UInt32(MemoryLayout<mobilellm_generate_params>.size)
        params.max_tokens = 256
        params.n_logprobs = -1
        params.reasoning_budget = -1
        return params
    }
}

/// A C callback and its user data, carried into Swift closures.
struct CallbackBox<Function>: @unchecked Sendable {
    let function: Function
    let userData: UnsafeMutableRawPointer?
}
