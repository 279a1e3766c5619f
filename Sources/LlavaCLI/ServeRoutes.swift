import Foundation
import Hummingbird

/// The routes of `llava serve`: chat completions (whole or streamed as server-sent events),
/// the model list, health and metrics. Every failure answers with OpenAI's error object.
func serveRouter(engine: ServeEngine, maxBodyBytes: Int) -> Router<BasicRequestContext> {
    let router = Router()
    router.add(middleware: OpenAIErrorMiddleware(metrics: engine.metrics))
    router.get("health") { _, _ in jsonResponse(["status": "ok"]) }
    router.get("v1/models") { _, _ in
        jsonResponse(ModelList(data: [.init(id: engine.modelID, created: Int(Date().timeIntervalSince1970))]))
    }
    router.get("metrics") { _, _ in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: engine.metrics.text())))
    }
    router.post("v1/chat/completions") { request, _ in
        var request = request
        let body = try await request.collectBody(upTo: maxBodyBytes)
        let data = Data(body.readableBytesView)
        let parsed: ChatCompletionRequest
        do {
            parsed = try JSONDecoder().decode(ChatCompletionRequest.self, from: data)
        } catch {
            throw ServeError(decoding: error, body: data)
        }
        let job = try engine.prepare(parsed)
        let id = "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let events = EventReader(engine.submit(job))
        // The first event tells whether the request fails before any text (a bad picture, a prompt past the context).
        let first = await events.next()
        if case .failed(let error)? = first { throw requestError(error) }
        if parsed.stream {
            return streamResponse(first: first, events: events, id: id, created: created, model: engine.modelID)
        }
        var event = first
        while let current = event {
            switch current {
            case .text: event = await events.next()
            case .failed(let error): throw requestError(error)
            case .done(let c):
                return jsonResponse(ChatCompletionResponse(
                    id: id, created: created, model: engine.modelID,
                    choices: [.init(message: AssistantMessage(content: c.text), finishReason: c.finishReason)],
                    usage: c.usage, timings: c.timings))
            }
        }
        throw ServeError(status: 500, message: "the engine ended without an answer", type: "server_error")
    }
    return router
}

/// The text deltas as `chat.completion.chunk` events, a last chunk with the finish reason, usage
/// and timings, then `data: [DONE]`.
private func streamResponse(first: ServeEngine.Event?, events: EventReader, id: String, created: Int,
                            model: String) -> Response {
    @Sendable func chunk(_ delta: ChatCompletionChunk.Delta, finish: String? = nil, completion: ServeEngine.Completion? = nil) -> ByteBuffer {
        let value = ChatCompletionChunk(id: id, created: created, model: model,
                                        choices: [.init(delta: delta, finishReason: finish)],
                                        usage: completion?.usage, timings: completion?.timings)
        return sse(String(decoding: (try? JSONEncoder().encode(value)) ?? Data(), as: UTF8.self))
    }
    let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache"]
    return Response(status: .ok, headers: headers, body: ResponseBody { writer in
        try await writer.write(chunk(.init(role: "assistant", content: "")))
        var event = first
        while let current = event {
            switch current {
            case .text(let piece):
                try await writer.write(chunk(.init(content: piece)))
            case .done(let c):
                try await writer.write(chunk(.init(), finish: c.finishReason, completion: c))
            case .failed(let error):
                let body = (try? JSONEncoder().encode(requestError(error).body)) ?? Data()
                try await writer.write(sse(String(decoding: body, as: UTF8.self)))
            }
            event = await events.next()
        }
        try await writer.write(sse("[DONE]"))
        try await writer.finish(nil)
    })
}

private func sse(_ data: String) -> ByteBuffer { ByteBuffer(string: "data: \(data)\n\n") }

/// The engine's events, read one at a time by the handler and then by the streamed body.
private final class EventReader: @unchecked Sendable {
    private var iterator: AsyncStream<ServeEngine.Event>.AsyncIterator

    init(_ stream: AsyncStream<ServeEngine.Event>) { iterator = stream.makeAsyncIterator() }

    func next() async -> ServeEngine.Event? { await iterator.next() }
}

/// An engine failure as the request's fault (400): a picture that does not decode, a prompt past
/// the context, a merge the tower cannot plan.
private func requestError(_ error: Error) -> ServeError {
    error as? ServeError ?? .invalid(String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " "))
}

func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// Turns every error into OpenAI's error object with its status (404 for unknown routes, 413 for
/// a body over --max-body-mb), and counts chat-completions requests by status.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServeMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = Self.response(for: error, request: request)
        }
        if request.uri.path == "/v1/chat/completions" { metrics.countRequest(status: Int(response.status.code)) }
        return response
    }

    static func response(for error: Error, request: Request) -> Response {
        let failure: ServeError
        switch error {
        case let error as ServeError:
            failure = error
        case let error as HTTPResponseError:
            let status = Int(error.status.code)
            let message = switch status {
            case 404: "unknown route: \(request.method.rawValue) \(request.uri.path)"
            case 405: "\(request.method.rawValue) is not allowed on \(request.uri.path)"
            case 413: "the request body is larger than the server's --max-body-mb"
            default: error.status.reasonPhrase
            }
            failure = ServeError(status: status, message: message, type: status < 500 ? "invalid_request_error" : "server_error",
                                 code: status == 404 ? "not_found" : status == 413 ? "body_too_large" : nil)
        default:
            failure = ServeError(status: 500, message: String(describing: error), type: "server_error")
        }
        let statuses: [HTTPResponse.Status] = [.badRequest, .notFound, .methodNotAllowed, .contentTooLarge, .internalServerError]
        let status = statuses.first { $0.code == failure.status } ?? HTTPResponse.Status(code: failure.status)
        return jsonResponse(failure.body, status: status)
    }
}
