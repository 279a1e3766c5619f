import Checkpoint
import Foundation
import Kernels

/// `multi_modal_projector`: linear_1 → GELU (erf) → linear_2, mapping vision features into the
/// language model's embedding space.
public final class LlavaMultiModalProjector {
    let linear1: Weight, linear2: Weight
    let bias1: [Float]?, bias2: [Float]?
    let activation: Activation

    init(_ ckpt: CheckpointFolder, config: LlavaConfiguration, quantization: WeightQuantization = .none) throws {
        let p = ckpt.weightNames.projector
        let load = LinearLoader(checkpoint: ckpt, quantization: quantization)
        let inDim = config.vision.hiddenSize * config.visionFeatureLayers.count
        let hidden = config.text.hiddenSize
        linear1 = try load(p + "linear_1.weight", shape: [hidden, inDim])
        linear2 = try load(p + "linear_2.weight", shape: [hidden, hidden])
        if config.multimodalProjectorBias {
            bias1 = try ckpt.floats(p + "linear_1.bias", shape: [hidden])
            bias2 = try ckpt.floats(p + "linear_2.bias", shape: [hidden])
        } else {
            bias1 = nil
            bias2 = nil
        }
        activation = Activation(huggingFaceName: config.projectorHiddenAct) ?? .gelu
    }

    public func callAsFunction(_ features: Matrix) -> Matrix {
        stage("projector") {
            let h = linear(features, linear1, bias: bias1)
            activate(h, activation)
            return linear(h, linear2, bias: bias2)
        }
    }
}
