// A plain C interface over libsentencepiece's SentencePieceProcessor.
// Every function catches C++ exceptions; errors come back as return codes.
#ifndef SPM_SHIM_H
#define SPM_SHIM_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct spm_processor spm_processor;

/// Loads a serialized model from memory (the bytes of a tokenizer.model file). On failure
/// returns NULL and writes a message into `err`.
spm_processor *spm_load(const char *data, size_t size, char *err, size_t err_len);
void spm_free(spm_processor *p);

int spm_vocab_size(const spm_processor *p);
int spm_bos_id(const spm_processor *p);
int spm_eos_id(const spm_processor *p);
int spm_unk_id(const spm_processor *p);
int spm_pad_id(const spm_processor *p);

/// Encodes UTF-8 text. Returns the number of ids (which may exceed `cap`; then call again
/// with a larger buffer), or -1 on error.
int spm_encode(const spm_processor *p, const char *text, size_t len, int *out, int cap);
/// Decodes ids to UTF-8. Returns the number of bytes (may exceed `cap`), or -1 on error.
/// Ids outside the vocabulary are skipped.
int spm_decode(const spm_processor *p, const int *ids, int n, char *out, int cap);
/// Writes the piece of `id`. Returns its byte length (may exceed `cap`), or -1 if out of range.
int spm_id_to_piece(const spm_processor *p, int id, char *out, int cap);
/// Returns the id of a piece (the unknown id if absent).
int spm_piece_to_id(const spm_processor *p, const char *piece);
/// 1 if the id is a control symbol (<s>, </s>, ...), 0 otherwise.
int spm_is_control(const spm_processor *p, int id);
/// 1 if the id is a byte-fallback piece (<0x0A>, ...), 0 otherwise.
int spm_is_byte(const spm_processor *p, int id);

#ifdef __cplusplus
}
#endif
#endif
