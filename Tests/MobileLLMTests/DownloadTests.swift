import Foundation
import Testing
import MobileLLM
@testable import MobileLLMTools

/// The pieces of the download code that need no server (the network paths are tested end to end by
/// python/tests/test_cli_pull.py against Tests/hub/fake_hub.py). Expectations here are the documented behaviour
/// (cache locations, environment variables) and HTTP's header syntax (RFC 9110), which is the reference.
@Suite struct DownloadTests {
    @Test func cacheDirectoryPrecedence() {
        #expect(mobileLLMCacheDirectory(environment: ["MOBILELLM_CACHE": "/a", "XDG_CACHE_HOME": "/b", "HOME": "/h"]) == "/a")
        #expect(mobileLLMCacheDirectory(environment: ["MOBILELLM_CACHE": "", "XDG_CACHE_HOME": "/b", "HOME": "/h"]) == "/b/mobilellm")
        #expect(mobileLLMCacheDirectory(environment: ["HOME": "/h"]) == "/h/.cache/mobilellm")
        #expect(HubClient.defaultDirectory(for: "facebook/MobileLLM-R1-950M", environment: ["MOBILELLM_CACHE": "/c"])
            == "/c/hub/facebook--MobileLLM-R1-950M")
    }

    @Test func defaultModelSourceAndMirrorOverride() throws {
        #expect(try DefaultModelSource.fromEnvironment([:]) == .pinned)
        #expect(DefaultModelSource.pinned.fileName == "SmolLM2-135M-Instruct.Q4_1.gguf")
        let digest = String(repeating: "ab", count: 32)
        let mirror = try DefaultModelSource.fromEnvironment(["MOBILELLM_DEFAULT_MODEL_URL": "http://127.0.0.1:9/m.zip",
                                                             "MOBILELLM_DEFAULT_MODEL_SHA256": digest.uppercased()])
        #expect(mirror.archiveSHA256 == digest && mirror.memberSHA256 == nil && mirror.member == DefaultModelSource.pinned.member)
        #expect(mirror.cacheSubdirectory != DefaultModelSource.pinned.cacheSubdirectory)
        // A mirror without its digest, a bad digest or a non-HTTP URL is refused.
        for environment in [["MOBILELLM_DEFAULT_MODEL_URL": "http://127.0.0.1:9/m.zip"],
                            ["MOBILELLM_DEFAULT_MODEL_URL": "http://127.0.0.1:9/m.zip", "MOBILELLM_DEFAULT_MODEL_SHA256": "abc"],
                            ["MOBILELLM_DEFAULT_MODEL_URL": "file:///etc/passwd", "MOBILELLM_DEFAULT_MODEL_SHA256": digest]] {
            #expect(throws: MobileLLMError.self) { _ = try DefaultModelSource.fromEnvironment(environment) }
        }
    }

    @Test func repositoryIdsAndFileNames() {
        for good in ["facebook/MobileLLM-R1-950M", "HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2", "a_b/c.d"] {
            #expect(throws: Never.self) { try HubClient.validate(repo: good) }
        }
        for bad in ["", "/", "a/", "../etc", "a/b/c", "a/..", "a b/c", "a/b?x", String(repeating: "a", count: 300)] {
            #expect(throws: MobileLLMError.self, "\(bad)") { try HubClient.validate(repo: bad) }
        }
        #expect(HubClient.isPlainFileName("model-00001-of-00002.safetensors"))
        for bad in ["", "..", "a/b", "../x", ".hidden", "a\\b", "a\nb"] { #expect(!HubClient.isPlainFileName(bad), "\(bad)") }
    }

    @Test func headerParsing() {
        // ETags as huggingface_hub normalizes them: no weak prefix, no quotes.
        #expect(HubClient.normalizeETag("W/\"ABC123\"") == "abc123")
        #expect(HubClient.normalizeETag("\"af89eae5\"") == "af89eae5")
        // Content-Range (RFC 9110 14.4): "bytes first-last/complete" and "bytes */complete".
        #expect(HTTPClient.firstByte("bytes 100-199/200") == 100)
        #expect(HTTPClient.totalLength("bytes 100-199/200") == 200)
        #expect(HTTPClient.totalLength("bytes */5000") == 5000)
        #expect(HTTPClient.firstByte("items 1-2/3") == nil)
        #expect(HTTPClient.totalLength("bytes 0-1/*") == nil)
        #expect(isSHA256(String(repeating: "0f", count: 32)) && !isSHA256(String(repeating: "0F", count: 32)) && !isSHA256("0f"))
    }

    @Test func verificationRecordForgetsChangedFiles() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("weights.bin", "some weights")
        let digest = SHA256.hex(of: Array("some weights".utf8))
        let record = VerificationRecord(path: directory.path + "/sub/verified.json")
        #expect(!record.isVerified(file, digest: digest))
        #expect(try record.verify(file, expected: digest) == digest)
        #expect(record.isVerified(file, digest: digest))
        #expect(!record.isVerified(file, digest: String(repeating: "0", count: 64)))
        try directory.write("weights.bin", "other weights")        // new size and modification time
        #expect(!record.isVerified(file, digest: digest))
        #expect(try record.verify(file, expected: digest) == SHA256.hex(of: Array("other weights".utf8)))
        #expect(!record.isVerified(file, digest: digest))
    }

    @Test func networkFailuresAreErrorsNamingTheURL() throws {
        // Port 9 (discard) on the loopback address: nothing listens, the connection is refused at once.
        let client = HTTPClient(idleTimeout: 5)
        let url = try #require(URL(string: "http://127.0.0.1:9/file"))
        do {
            _ = try client.get(url)
            Issue.record("a refused connection succeeded")
        } catch let error as MobileLLMError {
            #expect(error.description.contains("http://127.0.0.1:9/file"))
        }
        #expect(throws: MobileLLMError.self) { _ = try client.get(try #require(URL(string: "ftp://example.com/x"))) }
    }
}
