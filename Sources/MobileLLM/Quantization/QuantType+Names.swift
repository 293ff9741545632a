extension QuantType {
    /// The type's lower-case name as command lines and llama.cpp spell it: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1,
    /// q8_0, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k.
    public var name: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .bf16: return "bf16"
        case .q4_0: return "q4_0"
        case .q4_1: return "q4_1"
        case .q5_0: return "q5_0"
        case .q5_1: return "q5_1"
        case .q8_0: return "q8_0"
        case .iq4_nl: return "iq4_nl"
        case .q2_K: return "q2_k"
        case .q3_K: return "q3_k"
        case .q4_K: return "q4_k"
        case .q5_K: return "q5_k"
        case .q6_K: return "q6_k"
        }
    }

    /// The type named `name` (case-insensitive, e.g. "q4_0", "Q8_0", "q4_K"), or nil.
    public init?(name: String) {
        guard let type = QuantType.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = type
    }
}
