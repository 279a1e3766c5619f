import ArgumentParser
import Foundation
import Hummingbird
import LLaVA
import Logging

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve OpenAI-compatible chat completions over HTTP.",
        discussion: """
        POST /v1/chat/completions takes OpenAI's request (messages with text and at most one \
        image_url as a data:image/…;base64, URI, or a file:// URL inside --allowed-media-path; \
        max_tokens, temperature, top_p, seed, stop, stream) plus merge, ratio and keep; the flags \
        below are the defaults of every request. Also GET /v1/models, /health and /metrics. \
        Requests are answered one at a time; SIGTERM or SIGINT finishes the running one and exits.
        """
    )

    @OptionGroup var model: ModelOptions
    @Option(name: .long, help: "Address to listen on.")
    var host = "127.0.0.1"
    @Option(name: .long, help: "Port to listen on (0: any free port, printed on stderr).")
    var port = 8080
    @Option(name: .long, help: ArgumentHelp("Folder whose images may be named by file:// URLs (refused without it).", valueName: "dir"))
    var allowedMediaPath: String?
    @Option(name: .long, help: "Largest request body in MiB.")
    var maxBodyMb = 20
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var merge: MergeFlags
    @OptionGroup var generation: GenerationFlags

    func validate() throws {
        if host.isEmpty { throw ValidationError("--host is empty") }
        if !(0...65535).contains(port) { throw invalid("--port", "in 0...65535", port) }
        if !(1...1024).contains(maxBodyMb) { throw invalid("--max-body-mb", "in 1...1024", maxBodyMb) }
        if let allowedMediaPath {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: allowedMediaPath, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--allowed-media-path \(allowedMediaPath) is not a folder")
            }
        }
    }

    func run() throws {
        try reportingErrors {
            let directory = try model.resolve()
            let settings = RunSettings(directory: directory, model: model, imageMode: imageOptions.imageMode,
                                       merge: merge.settings, generation: generation)
            let pipeline = try model.loadPipeline(settings)
            let template = try ConversationTemplate.load(settings.template)
            _ = try pipeline.model.contextSize(settings.generation)
            _ = try pipeline.model.plannedVisualTokens(settings.merge)
            let media = allowedMediaPath.map { URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath().path }
            let engine = try ServeEngine(
                pipeline: pipeline, template: template,
                defaults: .init(runSettings: settings, mergeFlags: merge, generationFlags: generation, allowedMediaPath: media),
                metrics: ServeMetrics(registry: ServeMetrics.bootstrap()))
            var logger = Logger(label: "llava.serve")
            logger.logLevel = .warning
            let host = host
            let app = Application(
                router: serveRouter(engine: engine, maxBodyBytes: maxBodyMb << 20),
                configuration: .init(address: .hostname(host, port: port), serverName: "llava"),
                onServerRunning: { channel in
                    printErr("llava serve: \(engine.modelID) on http://\(host):\(channel.localAddress?.port ?? 0)")
                },
                logger: logger)
            try runUntilDone { try await app.runService() }
        }
    }
}

/// Runs `body` on the concurrency pool and waits for it on this thread.
private func runUntilDone(_ body: @escaping @Sendable () async throws -> Void) throws {
    final class Outcome: @unchecked Sendable { var error: Error? }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { try await body() } catch { outcome.error = error }
        done.signal()
    }
    done.wait()
    if let error = outcome.error { throw error }
}

extension Serve: Exemplified {
    static let examples = [
        "llava serve --port 8080",
        "llava serve -m ~/llava-1.5-7b-hf --merge pitome --ratio 0.9 --allowed-media-path ~/pictures",
    ]
}
