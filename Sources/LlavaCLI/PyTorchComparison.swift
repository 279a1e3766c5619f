import Foundation
import LLaVA

/// transformers' timings on the same checkpoint, image and prompt, from Scripts/bench/pytorch_bench.py
/// (PyTorch CPU, Float32), for `llava bench --compare-pytorch`.
struct PyTorchReference {
    var visionMs: Double
    var prefillMs: Double
    var ttftMs: Double
    var decodeTokensPerS: Double
    var promptTokens: Int
    var visualTokens: Int
    var torchVersion: String
    var attention: String
    var threads: Int
    /// The script's whole JSON object, kept in our JSON report.
    var raw: [String: Any]

    /// Runs the script (one warm-up, then `repeats` timed runs) and reads its JSON.
    static func measure(python: String, script: String, model: String, image: String, question: String,
                        template: String, threads: Int, maxTokens: Int, repeats: Int) throws -> PyTorchReference {
        guard FileManager.default.fileExists(atPath: script) else {
            throw CLIError("\(script): no such file (the PyTorch timing script; set --pytorch-script)")
        }
        let output = NSTemporaryDirectory() + "llava-pytorch-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, "--model", model, "--image", image, "--question", question,
                             "--template", template, "--threads", String(threads), "--max-tokens", String(maxTokens),
                             "--repeat", String(repeats), "--prompt-tokens", "0", "--json", output]
        // Progress goes to our stderr; Python's own messages are kept for the one-line reason.
        let messages = Pipe()
        process.standardOutput = FileHandle.standardError
        process.standardError = messages
        do { try process.run() } catch {
            throw CLIError("cannot start \(python): \(error.localizedDescription)")
        }
        let text = String(decoding: messages.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let last = text.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
            let install = "pip install 'torch==2.13.0+cpu' transformers safetensors sentencepiece pillow"
            if last.contains("No module named") {
                throw CLIError("\(python) cannot run \(script): \(last) (\(install))")
            }
            throw CLIError("\(script) exited with status \(process.terminationStatus)\(last.isEmpty ? "" : ": " + last) (is torch installed? \(install))")
        }
        guard let data = FileManager.default.contents(atPath: output),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CLIError("\(script) did not write its JSON result")
        }
        func number(_ key: String) throws -> Double {
            guard let v = object[key] as? NSNumber else { throw CLIError("\(script): result has no numeric \(key)") }
            return v.doubleValue
        }
        return PyTorchReference(
            visionMs: try number("vision_ms"), prefillMs: try number("prefill_ms"), ttftMs: try number("ttft_ms"),
            decodeTokensPerS: try number("decode_tokens_per_s"), promptTokens: Int(try number("prompt_tokens")),
            visualTokens: Int(try number("visual_tokens")),
            torchVersion: object["torch_version"] as? String ?? "?",
            attention: object["attn_implementation"] as? String ?? "?",
            threads: (object["threads"] as? NSNumber)?.intValue ?? threads, raw: object)
    }
}
