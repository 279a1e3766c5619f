import Checkpoint
import Foundation

extension LlavaConfiguration {
    /// Floating-point operations (multiply and add counted separately) of the vision tower and
    /// projector for one image under `settings`, at the token counts the merge schedule gives:
    /// patch embedding, then for every layer that runs q/k/v/out projections and attention on the
    /// tokens entering it and the MLP on the tokens it holds then (fewer when the merge sits
    /// between attention and MLP), then the projector on the visual tokens (PruMerge+: plus the
    /// next layer's keys and CLS query it reads). Merging itself and norms are left out.
    public func visionFLOPs(_ settings: VisionMergeSettings) throws -> Double {
        let counts = try plannedTokenCounts(settings).map(Double.init)
        let c = Double(vision.hiddenSize), inner = Double(vision.intermediateSize)
        let p = Double(vision.patchSize)
        var flops = 2 * Double(vision.numPatches) * 3 * p * p * c
        for i in 0..<visionLayersToRun {
            let t = counts[i]
            let mlpTokens = settings.metric == .keys && settings.isActive ? counts[i + 1] : t
            flops += 2 * t * 4 * c * c + 4 * t * t * c + 2 * mlpTokens * 2 * c * inner
        }
        var visual = counts.last! - Double(visionFeatureSelectStrategy.droppedTokens)
        if settings.options.method.site == .probeLayer {
            // The next layer's keys of every token and the CLS query against them; the projector
            // then runs on the kept tokens (for the adaptive count, on every patch: an upper bound).
            let t = counts.last!
            flops += 2 * t * c * c + 2 * c * c + 2 * t * c
            if let keep = try plannedVisualTokens(settings) { visual = Double(keep) }
        }
        let projectorIn = c * Double(visionFeatureLayers.count), h = Double(text.hiddenSize)
        flops += 2 * visual * (projectorIn * h + h * h)
        return flops
    }
}
