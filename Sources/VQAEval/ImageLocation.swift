import Foundation

/// Where a question file's images are: the one rule of every command that reads question files.
public enum ImageLocation {
    /// The file of `image` (a question's `image` field): itself when absolute; under `folder`
    /// when one is given; otherwise next to the question file, or in the `images/` folder beside
    /// it when it is not next to it (and when it is in neither, the path next to the question
    /// file, so that the error names it).
    public static func path(of image: String, questionFile: String, folder: String?) -> String {
        if image.hasPrefix("/") { return image }
        if let folder { return join(folder, image) }
        let beside = (questionFile as NSString).deletingLastPathComponent
        let candidates = [join(beside, image), join(join(beside, "images"), image)]
        return candidates.first { FileManager.default.fileExists(atPath: $0) } ?? candidates[0]
    }

    /// The folder a question file is in ("." for a bare file name).
    public static func folder(of questionFile: String) -> String {
        let beside = (questionFile as NSString).deletingLastPathComponent
        return beside.isEmpty ? "." : beside
    }

    static func join(_ folder: String, _ name: String) -> String {
        if folder.isEmpty { return name }
        return folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}
