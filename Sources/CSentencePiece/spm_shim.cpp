#include "spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

struct spm_processor {
    sentencepiece::SentencePieceProcessor sp;
};

static void copy_message(const std::string &msg, char *err, size_t err_len) {
    if (err == nullptr || err_len == 0) return;
    size_t n = msg.size() < err_len - 1 ? msg.size() : err_len - 1;
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
}

extern "C" spm_processor *spm_load(const char *data, size_t size, char *err, size_t err_len) {
    try {
        auto *p = new spm_processor();
        auto status = p->sp.LoadFromSerializedProto(std::string_view(data, size));
        if (!status.ok()) {
            copy_message(status.ToString(), err, err_len);
            delete p;
            return nullptr;
        }
        return p;
    } catch (const std::exception &e) {
        copy_message(e.what(), err, err_len);
    } catch (...) {
        copy_message("unknown error", err, err_len);
    }
    return nullptr;
}

extern "C" void spm_free(spm_processor *p) { delete p; }

extern "C" int spm_vocab_size(const spm_processor *p) { return p->sp.GetPieceSize(); }
extern "C" int spm_bos_id(const spm_processor *p) { return p->sp.bos_id(); }
extern "C" int spm_eos_id(const spm_processor *p) { return p->sp.eos_id(); }
extern "C" int spm_unk_id(const spm_processor *p) { return p->sp.unk_id(); }
extern "C" int spm_pad_id(const spm_processor *p) { return p->sp.pad_id(); }

extern "C" int spm_encode(const spm_processor *p, const char *text, size_t len, int *out, int cap) {
    try {
        std::vector<int> ids;
        auto status = p->sp.Encode(std::string(text, len), &ids);
        if (!status.ok()) return -1;
        for (size_t i = 0; i < ids.size() && (int)i < cap; i++) out[i] = ids[i];
        return (int)ids.size();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_decode(const spm_processor *p, const int *ids, int n, char *out, int cap) {
    try {
        std::vector<int> v;
        v.reserve(n);
        int size = p->sp.GetPieceSize();
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < size) v.push_back(ids[i]);
        std::string text;
        auto status = p->sp.Decode(v, &text);
        if (!status.ok()) return -1;
        if ((int)text.size() <= cap) std::memcpy(out, text.data(), text.size());
        return (int)text.size();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_id_to_piece(const spm_processor *p, int id, char *out, int cap) {
    try {
        if (id < 0 || id >= p->sp.GetPieceSize()) return -1;
        const std::string &piece = p->sp.IdToPiece(id);
        if ((int)piece.size() <= cap) std::memcpy(out, piece.data(), piece.size());
        return (int)piece.size();
    } catch (...) {
        return -1;
    }
}

extern "C" int spm_piece_to_id(const spm_processor *p, const char *piece) {
    try {
        return p->sp.PieceToId(piece);
    } catch (...) {
        return p->sp.unk_id();
    }
}

extern "C" int spm_is_control(const spm_processor *p, int id) {
    if (id < 0 || id >= p->sp.GetPieceSize()) return 0;
    return p->sp.IsControl(id) ? 1 : 0;
}

extern "C" int spm_is_byte(const spm_processor *p, int id) {
    if (id < 0 || id >= p->sp.GetPieceSize()) return 0;
    return p->sp.IsByte(id) ? 1 : 0;
}
