import Foundation
import Kernels

/// Named tensors whose shapes are checked on the way out: a LLaVA checkpoint folder, or a single
/// safetensors file (the CLIP folder CDPruner reads its text tower from).
public protocol TensorSource: AnyObject {
    /// A weight of the given shape, kept in the file's memory (2-D view: [shape[0], rest]).
    func weight(_ name: String, shape: [Int]) throws -> Weight
    /// A small tensor widened to Float32.
    func floats(_ name: String, shape: [Int]) throws -> [Float]
}

extension CheckpointFolder: TensorSource {}

extension SafeTensorsFile: TensorSource {
    /// The tensor `name`, which must have `shape` (the error names this file).
    public func info(_ name: String, shape: [Int]) throws -> TensorInfo {
        let t = try info(name)
        guard t.shape == shape else {
            throw CheckpointError.shapeMismatch(file: path, tensor: name, found: t.shape, expected: shape)
        }
        return t
    }

    public func weight(_ name: String, shape: [Int]) throws -> Weight { try weight(info(name, shape: shape)) }

    public func floats(_ name: String, shape: [Int]) throws -> [Float] { try floats(info(name, shape: shape)) }
}
