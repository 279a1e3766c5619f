import Checkpoint
import Foundation
import Kernels

/// The head of `CLIPVisionModelWithProjection` that CDPruner puts on the LLaVA tower's features:
/// `visual_projection(post_layernorm(features))`, the projection without bias. LLaVA checkpoints
/// have neither tensor; they come from the CLIP folder (`vision_model.post_layernorm.*`,
/// `visual_projection.weight`).
public final class CLIPVisionProjection {
    public let config: CLIPVisionProjectionConfiguration
    let postLayernorm: (weight: [Float], bias: [Float])
    let visualProjection: Weight  // [projection_dim, C]

    /// Maps the two tensors of `source`; throws the first one missing or of the wrong shape.
    public init(_ source: any TensorSource, config: CLIPVisionProjectionConfiguration) throws {
        self.config = config
        let c = config.hiddenSize
        postLayernorm = (try source.floats("vision_model.post_layernorm.weight", shape: [c]),
                         try source.floats("vision_model.post_layernorm.bias", shape: [c]))
        visualProjection = try source.weight("visual_projection.weight", shape: [config.projectionDim, c])
    }

    /// Image embeddings [N, projection_dim] of patch features [N, C] (the feature layer's hidden
    /// state without the CLS row, as CDPruner's `feature_select` leaves it, before the projector).
    public func callAsFunction(_ features: Matrix) -> Matrix {
        precondition(features.cols == config.hiddenSize,
                     "CLIP visual projection: features are \(features.cols) wide, the CLIP folder's tower \(config.hiddenSize)")
        let normed = Matrix(uninitializedRows: features.rows, cols: features.cols)
        layerNorm(features, weight: postLayernorm.weight, bias: postLayernorm.bias, eps: config.layerNormEps, into: normed)
        return linear(normed, visualProjection)
    }
}
