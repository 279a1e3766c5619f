import Metrics
import Prometheus

/// The counters and the first-token histogram of `GET /metrics`, kept through swift-metrics in a
/// Prometheus registry.
final class ServeMetrics: @unchecked Sendable {
    let registry: PrometheusCollectorRegistry
    private let promptTokens = Counter(label: "llava_prompt_tokens_total")
    private let generatedTokens = Counter(label: "llava_generated_tokens_total")
    private let visualTokens = Counter(label: "llava_visual_tokens_total")
    private let cacheHits = Counter(label: "llava_image_cache_hits_total")
    private let firstToken = Metrics.Timer(label: "llava_first_token_seconds")

    /// Bootstraps swift-metrics with a Prometheus factory: call once per process, before any metric is made.
    static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["llava_first_token_seconds"] =
            [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30].map { Duration.milliseconds(Int64($0 * 1000)) }
        MetricsSystem.bootstrap(factory)
        return registry
    }

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// One answered request: its token counts, cache hit and time to the first token.
    func record(_ completion: ServeEngine.Completion) {
        promptTokens.increment(by: completion.usage.promptTokens)
        generatedTokens.increment(by: completion.usage.completionTokens)
        visualTokens.increment(by: completion.timings.visualTokens)
        if completion.timings.imageCacheHit { cacheHits.increment() }
        firstToken.recordNanoseconds(Int64(completion.timings.firstTokenMs * 1_000_000))
    }

    /// One chat-completions request by its HTTP status.
    func countRequest(status: Int) {
        Counter(label: "llava_requests_total", dimensions: [("status", String(status))]).increment()
    }

    /// The Prometheus text format.
    func text() -> [UInt8] { registry.emitToBuffer() }
}
