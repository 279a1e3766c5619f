import Foundation
import ZIPFoundation

/// A one-sheet `.xlsx` workbook, as pandas' `to_excel(index=False)` lays a table out: the
/// column names in the first row, then one row per record; strings are inline strings, numbers
/// numbers, and a null an empty cell. Only the parts a SpreadsheetML reader needs are written.
public enum Spreadsheet {
    /// Writes `columns` and `rows` to `path` (through a temporary file renamed into place).
    public static func write(columns: [JSONValue], rows: [[JSONValue]], to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        try? FileManager.default.removeItem(at: temporary)
        do {
            let archive = try Archive(url: temporary, accessMode: .create)
            for (name, text) in parts(sheet: sheet(columns: columns, rows: rows)) {
                let data = Data(text.utf8)
                try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count),
                                     compressionMethod: .deflate) { position, size in
                    data.subdata(in: Int(position)..<Int(position) + size)
                }
            }
            guard rename(temporary.path, path) == 0 else {
                throw BenchmarkFileError(path, "cannot write: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// The package parts, in the order Excel writes them.
    static func parts(sheet: String) -> [(String, String)] {
        let header = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"# + "\n"
        let package = "http://schemas.openxmlformats.org/package/2006"
        let office = "http://schemas.openxmlformats.org/officeDocument/2006"
        let main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
        return [
            ("[Content_Types].xml", header + """
            <Types xmlns="\(package)/content-types">\
            <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
            <Default Extension="xml" ContentType="application/xml"/>\
            <Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
            <Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>\
            </Types>
            """),
            ("_rels/.rels", header + """
            <Relationships xmlns="\(package)/relationships">\
            <Relationship Id="rId1" Type="\(office)/relationships/officeDocument" Target="xl/workbook.xml"/>\
            </Relationships>
            """),
            ("xl/workbook.xml", header + """
            <workbook xmlns="\(main)" xmlns:r="\(office)/relationships">\
            <sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>
            """),
            ("xl/_rels/workbook.xml.rels", header + """
            <Relationships xmlns="\(package)/relationships">\
            <Relationship Id="rId1" Type="\(office)/relationships/worksheet" Target="worksheets/sheet1.xml"/>\
            </Relationships>
            """),
            ("xl/worksheets/sheet1.xml", sheet),
        ]
    }

    /// The worksheet part.
    static func sheet(columns: [JSONValue], rows: [[JSONValue]]) -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"# + "\n"
        xml += #"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#
        for (r, values) in ([columns] + rows).enumerated() {
            xml += "<row r=\"\(r + 1)\">"
            for (c, value) in values.enumerated() {
                let ref = columnName(c) + String(r + 1)
                switch value {
                case .null: continue
                case .int(let i): xml += "<c r=\"\(ref)\"><v>\(i)</v></c>"
                case .double(let d) where d.isFinite: xml += "<c r=\"\(ref)\"><v>\(d)</v></c>"
                case .string(let s): xml += "<c r=\"\(ref)\" t=\"inlineStr\"><is><t xml:space=\"preserve\">\(escaped(s))</t></is></c>"
                default: xml += "<c r=\"\(ref)\" t=\"inlineStr\"><is><t>\(escaped(value.description))</t></is></c>"
                }
            }
            xml += "</row>"
        }
        return xml + "</sheetData></worksheet>"
    }

    /// A, B, …, Z, AA, AB, …
    static func columnName(_ index: Int) -> String {
        var n = index + 1, name = ""
        while n > 0 {
            name = String(UnicodeScalar(UInt8(65 + (n - 1) % 26))) + name
            n = (n - 1) / 26
        }
        return name
    }

    /// Text for XML character data: markup escaped, and characters XML 1.0 cannot hold left out.
    static func escaped(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\t", "\n", "\r": out.unicodeScalars.append(u)
            default: if u.value >= 0x20 && u.value != 0xFFFE && u.value != 0xFFFF { out.unicodeScalars.append(u) }
            }
        }
        return out
    }
}
