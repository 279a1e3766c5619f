import Kernels
import TokenMerging
import XCTest

/// Small hand-checked cases for each algorithm: order of the output, ties, clamps, r = 0.
final class AlgorithmTests: XCTestCase {
    func matrix(_ rows: [[Float]]) -> Matrix {
        Matrix(rows: rows.count, cols: rows[0].count, values: rows.flatMap { $0 })
    }

    func testToMeOrderKeptAThenB() {
        // Rows: 0 CLS, A = 0,2,4,6; B = 1,3,5. Row 4 is nearly row 1, row 6 nearly row 5.
        let m = matrix([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0.01, 0], [-1, 0, 0.2], [-1, 0.02, 0.2]])
        let plan = ToMe.plan(metric: m, remove: 2)
        // Kept A (CLS first, original order), then B in original order with their sources.
        XCTAssertEqual(plan.groups, [[0], [2], [1, 4], [3], [5, 6]])
        let out = apply(plan, to: m, .mean)
        XCTAssertEqual(out.rowArray(2), [1, 0.005, 0])
        XCTAssertEqual(ToMe.plan(metric: m, remove: 0), .identity(rows: 7))
        // Clamp (N − 1) / 2 = 3: CLS is never a source.
        let most = ToMe.plan(metric: m, remove: 100)
        XCTAssertEqual(most.outputRows, 4)
        XCTAssertEqual(most.groups[0], [0])
    }

    func testToMeTiesAreDeterministic() {
        // Identical tokens: every score ties. Sources are the first A rows by index; each goes to
        // the first B row.
        let m = Matrix(rows: 9, cols: 3, values: [Float](repeating: 1, count: 27))
        let plan = ToMe.plan(metric: m, remove: 3)
        XCTAssertEqual(plan.groups, [[0], [8], [1, 2, 4, 6], [3], [5], [7]])
    }

    func testPiToMeEnergyMatchesTheFormula() {
        var random = TestRandom(seed: 4)
        let w = random.matrix(rows: 5, cols: 5)
        let e = PiToMe.energy(similarity: w, margin: 0.3, alpha: 0.7)
        for i in 0..<5 {
            var sum: Double = 0
            for j in 0..<5 {
                let z = Double(w[i, j]) - 0.3
                sum += z > 0 ? z : 0.7 * (exp(z) - 1)
            }
            XCTAssertEqual(e[i], sum / 5, accuracy: 1e-6)
        }
    }

    func testPiToMeOrderAndTies() {
        // Identical patch tokens: equal energies, so ranks follow the index. A = patches 0, 2, 4,
        // B = patches 1, 3, 5; every A goes to the first B (row 2). Protected: patches 6, 7.
        let m = Matrix(rows: 9, cols: 2, values: [Float](repeating: 1, count: 18))
        m[0, 0] = -5  // CLS is not scored
        let plan = PiToMe.plan(metric: m, remove: 3, margin: 0.5)
        XCTAssertEqual(plan.groups, [[0], [7], [8], [2, 1, 3, 5], [4], [6]])
        XCTAssertEqual(PiToMe.plan(metric: m, remove: 0, margin: 0.5), .identity(rows: 9))
        // Clamp T' / 2 = 4: all patches pair up.
        XCTAssertEqual(PiToMe.plan(metric: m, remove: 50, margin: 0.5).outputRows, 5)
    }

    /// Near-duplicate tokens give energies that differ below Float32 resolution; the order must
    /// still follow the exact (Double) energies, and exact duplicates fall back to index order.
    func testPiToMeOrdersNearTiesByExactEnergy() {
        var random = TestRandom(seed: 12)
        let base = random.matrix(rows: 40, cols: 16)
        let patches = Matrix(rows: 120, cols: 16)
        // Rows 0–39: random; rows 40–79: the same, nudged by a few ulps; rows 80–119: exact copies.
        for i in 0..<120 {
            let nudge: Float = (40..<80).contains(i) ? 2e-7 : 0
            for c in 0..<16 { patches[i, c] = base[i % 40, c] + nudge * random.float() }
        }
        let margin = 0.3
        func exactEnergy(_ i: Int) -> Double {
            func norm(_ r: Int) -> Double { (0..<16).reduce(0.0) { $0 + Double(patches[r, $1]) * Double(patches[r, $1]) }.squareRoot() }
            var sum = 0.0
            for j in 0..<120 {
                let dot = (0..<16).reduce(0.0) { $0 + Double(patches[i, $1]) * Double(patches[j, $1]) }
                let z = dot / (norm(i) * norm(j)) - margin
                sum += z > 0 ? z : exp(z) - 1
            }
            return sum / 120
        }
        let exact = (0..<120).map(exactEnergy)
        let expected = (0..<120).sorted { exact[$0] > exact[$1] || (exact[$0] == exact[$1] && $0 < $1) }
        let v = Matrix(rows: 120, cols: 16)
        for i in 0..<120 {
            let n = (0..<16).reduce(Float(0)) { $0 + patches[i, $1] * patches[i, $1] }.squareRoot()
            for c in 0..<16 { v[i, c] = patches[i, c] / n }
        }
        let order = PiToMe.energyOrder(patches: patches, similarity: matmulTransposed(v, v), margin: margin, alpha: 1)
        XCTAssertEqual(order, expected)
        // The fast energies alone cannot separate the near-duplicates.
        let float = PiToMe.energy(similarity: matmulTransposed(v, v), margin: Float(margin), alpha: 1)
        XCTAssertTrue((0..<40).contains { abs(float[$0 + 40] - float[$0]) < PiToMe.tieTolerance })
    }

    func testPiToMeProtectsLowEnergyTokens() {
        // Patches 0–3 form a tight cluster (high energy); patches 4 and 5 are isolated (low energy).
        let m = matrix([[0, 0, 1], [1, 0, 0], [1, 0.01, 0], [1, 0, 0.01], [1, 0.01, 0.01], [0, 1, 0], [0, -1, 0]])
        let plan = PiToMe.plan(metric: m, remove: 2, margin: 0.5)
        XCTAssertEqual(plan.groups[0], [0])
        XCTAssertEqual(Set(plan.groups[1...2].map { $0[0] }), [5, 6], "isolated tokens are protected")
        XCTAssertEqual(plan.groups[3...].flatMap { $0 }.sorted(), [1, 2, 3, 4])
    }

    func testApplyReductions() {
        let x = matrix([[1, 2], [3, 4], [5, 0], [7, 8]])
        let plan = MergePlan(inputRows: 4, groups: [[0], [3, 1, 2]])
        XCTAssertEqual(apply(plan, to: x, .mean).toArray(), [1, 2, 5, 4])
        XCTAssertEqual(apply(plan, to: x, .sum).toArray(), [1, 2, 15, 12])
        XCTAssertEqual(apply(plan, to: x, .max).toArray(), [1, 2, 7, 8])
        XCTAssertEqual(apply(plan, to: x, .weightedMean(sizes: [9, 1, 2, 1])).toArray(), [1, 2, 20.0 / 4, 12.0 / 4])
        XCTAssertEqual(plan.droppingMergedRows().groups, [[0], [3]])
        XCTAssertTrue(MergePlan.identity(rows: 3).isIdentity)
        XCTAssertFalse(plan.isIdentity)
        XCTAssertFalse(MergePlan(inputRows: 3, groups: [[1], [0], [2]]).isIdentity)
    }

    func testPlanFromHeadsAndMerges() {
        // Merges join their output in the order listed, after the head; unlisted rows are dropped.
        let plan = MergePlan(inputRows: 7, heads: [0, 5, 2], merges: [(row: 6, into: 2), (row: 1, into: 0), (row: 3, into: 2)])
        XCTAssertEqual(plan, MergePlan(inputRows: 7, groups: [[0, 1], [5], [2, 6, 3]]))
        XCTAssertEqual(plan.groups, [[0, 1], [5], [2, 6, 3]])
        XCTAssertEqual(plan.members, [0, 1, 5, 2, 6, 3])
        XCTAssertEqual(plan.starts, [0, 2, 3, 6])
        XCTAssertEqual(Array(plan.group(2)), [2, 6, 3])
        XCTAssertEqual(plan.outputRows, 3)
        XCTAssertEqual(MergePlan(inputRows: 2, heads: [1, 0], merges: []).groups, [[1], [0]])
    }
}
