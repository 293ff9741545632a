import ArgumentParser
import Foundation
import MobileLLM
import MobileLLMTools

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download a model from the Hugging Face hub into a directory that --model can load.",
        discussion: """
        Fetches the files inference needs from REPO_ID at --revision: config.json, generation_config.json, \
        tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja (those present), and the \
        safetensors weights — the shards model.safetensors.index.json names, or every *.safetensors. Other files \
        (README, PyTorch .bin/.pth weights, ONNX, GGUF, images) are skipped and listed on stderr.

        Every file comes from the commit the revision resolves to. Sizes are checked, and SHA-256 for every file the \
        hub stores with Git LFS (the weights); a file that does not match is deleted and the command fails, naming \
        the file and both digests. An interrupted pull leaves <file>.part files; running the same command again \
        resumes them with HTTP range requests. Files already present and verified are not downloaded again.

        The directory is printed on stdout at the end (with --json: {"directory", "repo", "revision", "commit", \
        "files": [{"path", "bytes", "sha256", "status"}], "bytes", "skipped"}). Progress goes to stderr.

        Gated models (MobileLLM-R1 is gated, FAIR non-commercial license) need a token: create one at \
        https://huggingface.co/settings/tokens, accept the license on the model's page, then \
        `export HF_TOKEN=hf_...`. Without one the hub answers 401 and the command exits with status 1.

        Environment: HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) — access token, sent only to the hub, never to the CDN \
        it redirects large files to; HF_ENDPOINT — hub URL (default https://huggingface.co; --endpoint wins); \
        MOBILELLM_CACHE — cache directory (default $XDG_CACHE_HOME/mobilellm or ~/.cache/mobilellm).

        Example: mobilellm pull facebook/MobileLLM-R1-950M && \
        mobilellm generate --model ~/.cache/mobilellm/hub/facebook--MobileLLM-R1-950M --chat --prompt "2+2?" --max-tokens 64
        """
    )

    @Argument(help: "The repository id, owner/name (e.g. facebook/MobileLLM-R1-950M).")
    var repoID: String

    @Option(name: .long, help: "Branch, tag or commit to download.")
    var revision: String = "main"

    @Option(name: .long, help: "Directory to download into (default: <cache>/hub/<owner>--<name>).")
    var dir: String?

    @Option(name: .long, help: "Hub URL (default: $HF_ENDPOINT, else https://huggingface.co).")
    var endpoint: String?

    @Flag(name: .long, help: "Print a JSON summary on stdout instead of the directory alone.")
    var json = false

    func validate() throws {
        do {
            try HubClient.validate(repo: repoID)
        } catch let error as MobileLLMError {
            throw ValidationError(error.description)
        }
        guard !revision.isEmpty else { throw ValidationError("--revision: expected a branch, tag or commit, found an empty string") }
    }

    func run() throws {
        let hub = try HubClient.fromEnvironment(endpoint: endpoint)
        let directory = dir ?? HubClient.defaultDirectory(for: repoID)
        let result = try hub.pull(repo: repoID, revision: revision, into: directory)
        let downloaded = result.files.filter { $0.status == .downloaded }
        writeErr("mobilellm: \(result.files.count) files, \(ProgressBar.format(result.totalBytes)) (\(downloaded.count) downloaded, \(result.files.count - downloaded.count) already present)")
        guard json else {
            emit(result.directory)
            return
        }
        let files = result.files.map { file -> TemplateValue in
            ["path": .string(file.path), "bytes": .int(Int(file.bytes)), "sha256": .string(file.sha256),
             "status": .string(file.status.rawValue)]
        }
        let summary: TemplateValue = [
            "directory": .string(result.directory), "repo": .string(result.repo), "revision": .string(result.revision),
            "commit": .string(result.commit), "files": .array(files), "bytes": .int(Int(result.totalBytes)),
            "skipped": .array(result.skipped.map { .string($0) })]
        emit(summary.jsonText)
    }
}
