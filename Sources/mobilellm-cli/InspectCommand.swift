import ArgumentParser
import MobileLLM

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Describe a model file or directory.")
    @OptionGroup var modelOptions: ModelOptions
    func run() throws {}
}
