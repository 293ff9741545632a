// Placeholder until the translator lands.
enum JSONSchemaTranslator {
    struct Translation {
        var gbnf: String
        var pointers: [String: String]
    }

    static func translate(_ schema: String) throws -> Translation {
        throw MobileLLMError.jsonSchema(pointer: "", message: "JSON Schema support is not built yet")
    }
}
